"""``robbench run``, ``table``, ``plot``, ``report``, ``list`` and ``check``."""

from __future__ import annotations

import argparse
from pathlib import Path

from robbench.attacks.registry import ATTACKS
from robbench.cli.options import (
    ATTACK_SETTINGS,
    add_attack_settings,
    add_backend,
    add_batch_size,
    add_common,
    add_models,
    add_preset,
    add_stochastic,
    file_model_options,
    models_of,
    stochastic_of,
)
from robbench.cli.values import (
    parse_floats,
    parse_names,
    positive_int,
)
from robbench.data.datasets import DATASETS
from robbench.devices import resolve_device
from robbench.models.model_file import display_name
from robbench.records.scoring import ALL_DRAWS_AT
from robbench.records.store import DirectoryStore, find_runs
from robbench.report.html_report import write_report
from robbench.report.plots import make_plots
from robbench.report.tables import FORMATS, comparison_table, results_table, worst_case_markdown
from robbench.runs.config import RunConfig
from robbench.runs.distributed import launched_world
from robbench.runs.named import run_models_listing, run_named, run_targets_and_images
from robbench.studies import regression_check
from robbench.studies.diagnostics_report import diagnose_named, report_verdict

RUNS_ROOT = "results/runs"
"""Where ``robbench run`` puts its run directories unless told otherwise."""


def add_run(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="attack the models and tabulate robust accuracy")
    run.add_argument("--attack", default="pgd", help="attack name(s), comma-separated")
    add_models(run)
    add_stochastic(run)
    run.add_argument("--eps", default=None, help="comma-separated budgets (default per attack)")
    run.add_argument("--n", type=positive_int, default=None, help="test examples (default all)")
    run.add_argument("--draws", type=positive_int, default=10,
                     help="fresh passes R scoring each example of a random model")
    run.add_argument("--selection-draws", type=positive_int, default=10,
                     dest="selection_draws",
                     help="further passes used only to choose the per-example worst case")
    run.add_argument("--seed", type=int, default=0)
    add_backend(run)
    add_batch_size(run)
    run.add_argument("--out", default=RUNS_ROOT, help="directory of run directories")
    run.add_argument("--diagnostics", action="store_true",
                     help="afterwards, run the gradient-masking diagnostics for each model "
                          "(written to RUN_DIR/diagnostics/<model>/)")
    run.add_argument("--run-dir", default=None, dest="run_dir",
                     help="explicit run directory instead of OUT/<run id> (resumable too)")
    run.add_argument("--resume", default=None, metavar="RUN_ID",
                     help="continue the run RUN_ID under --out with its saved arguments")
    add_preset(run)
    add_common(run)
    add_attack_settings(run)
    run.set_defaults(func=cmd_run)


def run_config(args: argparse.Namespace) -> RunConfig:
    """The run the arguments describe (a resumed run's own saved config)."""
    if args.resume:
        meta = DirectoryStore(Path(args.out) / args.resume).read_meta()
        if meta is None:
            raise FileNotFoundError(f"run {Path(args.out) / args.resume} has no config.json; "
                                    "is the run id right?")
        return RunConfig.from_meta(meta)
    settings = {k: getattr(args, k) for k in ATTACK_SETTINGS if getattr(args, k) is not None}
    return RunConfig(dataset=args.dataset, models=models_of(args),
                     attacks=parse_names(args.attack, list(ATTACKS), "attack"),
                     eps=parse_floats(args.eps) if args.eps else None, n=args.n,
                     draws=args.draws, selection_draws=args.selection_draws, seed=args.seed,
                     backend=args.backend, params=settings)


def cmd_run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    config = run_config(args)
    run_dir = Path(args.run_dir) if args.run_dir else Path(args.out) / config.run_id()
    files = file_model_options(args)
    summary = run_named(config, run_dir, device=device, batch_size=args.batch_size,
                        data_dir=args.data_dir, quiet=args.quiet,
                        stochastic=stochastic_of(args), **files)
    if not launched_world().main:
        return 0
    print(comparison_table(summary, "md"), end="")
    print(f"\nwritten: {run_dir}/summary.csv, summary.md, config.json")
    if args.diagnostics:
        for spec in config.models:
            out = run_dir / "diagnostics" / display_name(spec)
            frame, seconds = diagnose_named(spec, config.dataset, out, device=device,
                                            data_dir=args.data_dir, quiet=args.quiet,
                                            **files)
            print(f"\ndiagnostics: {spec}\n{report_verdict(frame, seconds, out)}")
    return 0


def add_table(sub: argparse._SubParsersAction) -> None:
    table = sub.add_parser("table", help="comparison table of one or more runs")
    table.add_argument("runs", nargs="*", help="run directories (default: all under --root)")
    table.add_argument("--root", default=RUNS_ROOT)
    table.add_argument("--format", default="md", choices=FORMATS)
    table.add_argument("--out", default=None)
    table.add_argument("--diagnostics", action="append", default=[], metavar="CSV",
                       help="a diagnostics.csv of `robbench diagnose` to merge (repeatable)")
    table.add_argument("--first", type=positive_int, default=None, metavar="N",
                       help="count only the first N test images of every run, so that attacks "
                            "run on different numbers of images compare on the same ones")
    table.add_argument("--worst-case", action="store_true", dest="worst_case",
                       help="only the clean and worst-case rows (a headline's worst_case.md)")
    table.set_defaults(func=cmd_table)


def cmd_table(args: argparse.Namespace) -> int:
    runs = find_runs(args.runs, args.root)
    text = (worst_case_markdown(runs, args.first) if args.worst_case else
            results_table(runs, args.format, args.diagnostics, args.first,
                          all_draws_at=ALL_DRAWS_AT))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"written: {args.out}")
    else:
        print(text, end="")
    return 0


def add_plot(sub: argparse._SubParsersAction) -> None:
    plot = sub.add_parser("plot", help="figures of one or more runs (PNG and SVG)")
    plot.add_argument("runs", nargs="*", help="run directories (default: all under --root)")
    plot.add_argument("--root", default=RUNS_ROOT)
    plot.add_argument("--out", default="results/plots", help="directory for the figures")
    plot.add_argument("--data-dir", default=None, help="dataset directory (as for run)")
    plot.set_defaults(func=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    runs = find_runs(args.runs, args.root)
    targets, images, note = run_targets_and_images(runs[0], data_dir=args.data_dir)
    if note:
        print(f"robbench: note: {note}")
    written = make_plots(runs, args.out, targets=targets, test_images=images)
    print("written: " + ", ".join(str(p) for p in written))
    return 0


def add_report(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="one self-contained HTML page of a run, a headline "
                            "or a leaderboard (tables, diagnostics, figures inline)")
    report.add_argument("path", help="a run directory (results/runs/<id>), a headline "
                        "directory (results/<dataset>) or a leaderboard CSV")
    report.add_argument("--out", default=None,
                        help="the HTML file (default: PATH/report.html; NAME.html beside a "
                             "NAME.csv)")
    report.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    print(f"written: {write_report(args.path, args.out)}")
    return 0


def add_list(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("list", help="datasets, models (with checkpoint status), attacks"
                   ).set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    print("datasets: " + ", ".join(DATASETS))
    print("models:")
    for line in run_models_listing():
        print(f"  {line}")
    print("attacks:")
    for spec in ATTACKS.values():
        print(f"  {spec.name:16s} {spec.norm:5s} {'/'.join(spec.backends):31s} "
              f"{spec.description}")
    return 0


def add_check(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser("check", help="rerun the pinned grid; exit 1 on a regression")
    check.add_argument("--baseline", default="results/baseline.json")
    check.add_argument("--update", action="store_true",
                       help="rewrite the baseline from a fresh run and print what changed")
    check.add_argument("--quiet", action="store_true", help="no progress bars")
    check.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    if args.update:
        return regression_check.update(args.baseline, quiet=args.quiet)
    return regression_check.check(args.baseline, quiet=args.quiet)
