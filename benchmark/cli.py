"""The ``robbench`` command line: run, train, list, table, plot, check, diagnose, synth, perf."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from robbench import __version__

DEVICES = ("auto", "cpu", "cuda")


class UsageError(ValueError):
    """A bad command-line value: reported on one line with what is allowed."""


def parse_floats(text: str, what: str = "eps") -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(
            f"{what} {text!r} is not a comma-separated list of numbers (e.g. 0.1,0.2,0.3)"
        ) from None
    if not values or any(not (v > 0) or v != v or v == float("inf") for v in values):
        raise UsageError(f"{what} {text!r} must be positive finite numbers, e.g. 0.1,0.2,0.3")
    return values


def parse_names(text: str, allowed: Sequence[str], what: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    for name in names or [text]:
        if name not in allowed:
            raise UsageError(f"{what} {name!r} is unknown; allowed: {', '.join(allowed)}")
    return names


def attack_sizes(text: str) -> dict[str, int]:
    """``NAME=N,...`` into {name: N}, each N >= 1 (the names are the config's to check)."""
    sizes: dict[str, int] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            raise UsageError(f"{item.strip()!r} is not NAME=N (e.g. square=200)")
        try:
            sizes[name.strip()] = positive_int(value.strip())
        except argparse.ArgumentTypeError as err:
            raise UsageError(f"test examples for {name.strip()}: {err}") from None
    return sizes


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def int_tuple(text: str, minimum: int = 1) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers (e.g. 140,80)"
        ) from None
    if any(v < minimum for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} must be integers >= {minimum}")
    return values


def seed_tuple(text: str) -> tuple[int, ...]:
    """Distinct non-negative seeds, in the order given."""
    seeds = int_tuple(text, minimum=0)
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r} needs distinct seeds, each given once")
    return seeds


def nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def positive_float(text: str) -> float:
    value = nonnegative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value


def resolve_device(name: str) -> str:
    if name not in DEVICES:
        raise UsageError(f"device {name!r} is unknown; allowed: {', '.join(DEVICES)}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda' was asked for but no CUDA GPU is available; use cpu")
    return name


def _add_common(p: argparse.ArgumentParser) -> None:
    from robbench.datasets import DATASETS

    p.add_argument("--dataset", default="digits", choices=DATASETS)
    p.add_argument("--data-dir", default=None,
                   help="directory with the IDX files (default: $ROBBENCH_DATA or ~/.cache)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_preset(p: argparse.ArgumentParser) -> None:
    from robbench.presets import PRESETS

    p.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="thesis: SVHN with the thesis's models, Ranger training, 10k labels, "
                        "FGSM at eps 0.01-0.06 on its [-1, 1] scale, 1,000 test images")
    p.set_defaults(preset_parser=p)


ATTACK_OPTIONS: dict[str, dict] = {
    "--steps": dict(type=positive_int),
    "--step-size": dict(type=nonnegative_float, dest="step_size"),
    "--eot": dict(type=positive_int, help="noise draws per gradient (batched EOT)"),
    "--restarts": dict(type=positive_int),
    "--loss": dict(choices=("ce", "margin")),
    "--no-random-start": dict(dest="random_start", action="store_false", default=None),
    "--c": dict(type=nonnegative_float, help="CW trade-off constant"),
    "--kappa": dict(type=nonnegative_float, help="CW confidence"),
    "--lr": dict(type=nonnegative_float, help="CW learning rate"),
    "--n-queries": dict(type=positive_int, dest="n_queries"),
    "--max-batch": dict(type=positive_int, dest="max_batch",
                        help="rows (images x noise draws) per pass through the chain; default "
                             "on a CPU 2^19 pixels' worth (e.g. 668 rows of 28x28), on a GPU "
                             "no cap"),
}
ATTACK_SETTINGS = tuple(o.get("dest", flag[2:]) for flag, o in ATTACK_OPTIONS.items())
"""The attack parameters a user can override on the command line (``RunConfig.params`` keys)."""


def _add_attack_settings(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("attack settings (override the attack's defaults)")
    for flag, options in ATTACK_OPTIONS.items():
        g.add_argument(flag, **options)


def build_parser() -> argparse.ArgumentParser:
    from robbench.attacks.registry import BACKENDS
    from robbench.models.config import ACTIVATIONS, MODEL_NAMES, OBJECTIVES, OPTIMIZERS
    from robbench.tables import FORMATS

    parser = argparse.ArgumentParser(
        prog="robbench",
        description="Adversarial robustness of a ConvNet and a Short Run (Langevin) classifier.",
    )
    parser.add_argument("--version", action="version", version=f"robbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="attack the models and tabulate robust accuracy")
    run.add_argument("--attack", default="pgd", help="attack name(s), comma-separated")
    run.add_argument("--models", default=",".join(MODEL_NAMES))
    run.add_argument("--eps", default=None, help="comma-separated budgets (default per attack)")
    run.add_argument("--n", type=positive_int, default=None, help="test examples (default all)")
    run.add_argument("--draws", type=positive_int, default=10,
                     help="fresh forward passes R per example for the stochastic model")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--backend", default="torchattacks", choices=BACKENDS)
    run.add_argument("--batch-size", type=positive_int, default=500, dest="batch_size")
    run.add_argument("--out", default="results/runs", help="directory of run directories")
    run.add_argument("--diagnostics", action="store_true",
                     help="afterwards, run the gradient-masking diagnostics for each model "
                          "(written to RUN_DIR/diagnostics/<model>/)")
    run.add_argument("--run-dir", default=None, dest="run_dir",
                     help="explicit run directory instead of OUT/<run id> (resumable too)")
    run.add_argument("--resume", default=None, metavar="RUN_ID",
                     help="continue the run RUN_ID under --out with its saved arguments")
    _add_preset(run)
    _add_common(run)
    _add_attack_settings(run)
    run.set_defaults(func=cmd_run)

    train = sub.add_parser("train", help="train a model and cache its checkpoint")
    train.add_argument("--model", required=True, choices=MODEL_NAMES)
    train.add_argument("--objective", choices=OBJECTIVES)
    train.add_argument("--epochs", type=positive_int)
    train.add_argument("--generative-epochs", type=int, dest="generative_epochs")
    train.add_argument("--discriminative-epochs", type=int, dest="discriminative_epochs")
    train.add_argument("--bptt-epochs", type=int, dest="bptt_epochs")
    train.add_argument("--lr", type=nonnegative_float)
    train.add_argument("--bptt-lr", type=nonnegative_float, dest="bptt_lr")
    train.add_argument("--batch-size", type=positive_int, dest="batch_size")
    train.add_argument("--recon-weight", type=nonnegative_float, dest="recon_weight")
    train.add_argument("--seed", type=int)
    train.add_argument("--labels", type=positive_int, help="labelled training images")
    train.add_argument("--unlabelled", type=positive_int,
                       help="images for the generative stage (includes the labelled ones)")
    train.add_argument("--width", type=positive_int)
    train.add_argument("--latent", type=positive_int)
    train.add_argument("--langevin-steps", type=positive_int, dest="langevin_steps")
    train.add_argument("--step-size", type=nonnegative_float, dest="step_size")
    train.add_argument("--sigma", type=nonnegative_float)
    train.add_argument("--activation", choices=ACTIVATIONS)
    train.add_argument("--head-hidden", type=int_tuple, dest="head_hidden",
                       help="hidden widths of the classifier head, e.g. 64 or 140,80 ('' = linear)")
    train.add_argument("--optimizer", choices=OPTIMIZERS)
    train.add_argument("--anneal-from", type=nonnegative_float, dest="anneal_from",
                       help="fraction of each stage after which the lr decays on a cosine "
                            "(1 = constant)")
    train.add_argument("--out", default=None, help="checkpoint path (default: the cache)")
    _add_preset(train)
    _add_common(train)
    train.set_defaults(func=cmd_train)

    lst = sub.add_parser("list", help="datasets, models (with checkpoint status), attacks")
    lst.set_defaults(func=cmd_list)

    table = sub.add_parser("table", help="comparison table of one or more runs")
    table.add_argument("runs", nargs="*", help="run directories (default: all under --root)")
    table.add_argument("--root", default="results/runs")
    table.add_argument("--format", default="md", choices=FORMATS)
    table.add_argument("--out", default=None)
    table.add_argument("--diagnostics", action="append", default=[], metavar="CSV",
                       help="a diagnostics.csv of `robbench diagnose` to merge (repeatable)")
    table.add_argument("--first", type=positive_int, default=None, metavar="N",
                       help="count only the first N test images of every run, so that attacks "
                            "run on different numbers of images compare on the same ones")
    table.set_defaults(func=cmd_table)

    unl = sub.add_parser("unlabelled", help="claim 2: N labels, M unlabelled images")
    unl.add_argument("--labels", default="100", help="comma-separated label budgets N")
    unl.add_argument("--unlabelled", default="labels,all",
                     help="comma-separated generative-stage sizes M, counting the N labelled "
                          "images ('all' = training set, 'labels' = N; a size below N is "
                          "skipped for that N)")
    unl.add_argument("--budget", type=positive_float, default=1.0,
                     help="optimiser steps per stage, as a fraction of the full-data default")
    unl.add_argument("--n", type=positive_int, default=None, help="test examples")
    unl.add_argument("--eps", type=nonnegative_float, default=0.1)
    unl.add_argument("--train-seeds", type=seed_tuple, default=(0,), metavar="S,…",
                     help="train every model once per seed (its own labelled subset and initial "
                          "weights); with several, the table gives mean ± sd over seeds")
    unl.add_argument("--out", default=None, help="directory (default results/<dataset>)")
    _add_common(unl)
    unl.set_defaults(func=cmd_unlabelled)

    synth = sub.add_parser("synth", help="Short Run samples, reconstructions, Fréchet distance")
    synth.add_argument("--model", default="shortrun",
                       help="the generative model (only shortrun synthesises)")
    synth.add_argument("--n", type=positive_int, default=64, help="samples in the grid")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", default=None, help="directory (default results/<dataset>/synth)")
    _add_common(synth)
    synth.set_defaults(func=cmd_synth)

    head = sub.add_parser("headline", help="the full benchmark of a dataset: every attack, "
                          "diagnostics, table and figures into one results directory")
    head.add_argument("--n", type=positive_int, default=None, help="test examples (default all)")
    head.add_argument("--n-eot", type=positive_int, default=1000, dest="n_eot",
                      help="test examples for EOT-PGD, APGD, AutoAttack-rand and Square")
    head.add_argument("--n-attack", default=None, dest="n_attack", metavar="NAME=N,...",
                      help="test examples for single attacks, e.g. square=200 (overrides --n-eot "
                      "and --n for them)")
    head.add_argument("--draws", type=positive_int, default=10,
                      help="fresh forward passes R per example for the stochastic model")
    head.add_argument("--eot", type=positive_int, default=16,
                      help="noise draws M of EOT-PGD and EOT-PGD-L2")
    head.add_argument("--attacks", default=None,
                      help="comma-separated subset of the headline attacks (default all)")
    head.add_argument("--diagnostics-n", type=positive_int, default=100, dest="diagnostics_n")
    head.add_argument("--no-diagnostics", dest="diagnostics", action="store_false")
    head.add_argument("--seed", type=int, default=0)
    head.add_argument("--batch-size", type=positive_int, default=500, dest="batch_size")
    head.add_argument("--out", default=None, help="directory (default results/<dataset>)")
    _add_common(head)
    head.set_defaults(func=cmd_headline)

    chains = sub.add_parser("chains", help="Short Run clean accuracy with several chains per "
                            "input (mean logits, mean z, vote) beside the ConvNet")
    chains.add_argument("--chains", type=int_tuple, default=(1, 5),
                        help="comma-separated chain counts, e.g. 1,5,10")
    chains.add_argument("--n", type=positive_int, default=None, help="test examples (default all)")
    chains.add_argument("--seed", type=int, default=0)
    chains.add_argument("--out", default=None, help="directory (default results/<dataset>)")
    _add_common(chains)
    chains.set_defaults(func=cmd_chains)

    perf = sub.add_parser("perf", help="time the fast path against the plain reference")
    perf.add_argument("--device", default="auto", help="auto | cpu | cuda")
    perf.add_argument("--sizes", default="auto", choices=("auto", "full", "cpu"),
                      help="full: the issue's GPU sizes (MNIST shape); cpu: digits-sized smoke "
                      "(auto: full on CUDA, cpu otherwise)")
    perf.add_argument("--out", default="results/perf")
    perf.add_argument("--data-dir", default=None,
                      help="dataset files for the accuracy guard (MNIST IDX directory)")
    perf.set_defaults(func=cmd_perf)

    readme = sub.add_parser("readme", help="refresh README blocks that quote generated results")
    readme.add_argument("--file", default="README.md")
    readme.add_argument("--check", action="store_true", help="exit 1 if a block is stale")
    readme.set_defaults(func=cmd_readme)

    plot = sub.add_parser("plot", help="figures of one or more runs (PNG and SVG)")
    plot.add_argument("runs", nargs="*", help="run directories (default: all under --root)")
    plot.add_argument("--root", default="results/runs")
    plot.add_argument("--out", default="results/plots", help="directory for the figures")
    plot.add_argument("--data-dir", default=None, help="dataset directory (as for run)")
    plot.set_defaults(func=cmd_plot)

    check = sub.add_parser("check", help="rerun the pinned grid; exit 1 on a regression")
    check.add_argument("--baseline", default="results/baseline.json")
    check.add_argument("--update", action="store_true",
                       help="rewrite the baseline from a fresh run and print what changed")
    check.add_argument("--quiet", action="store_true", help="no progress bars")
    check.set_defaults(func=cmd_check)

    diag = sub.add_parser("diagnose", help="gradient-masking diagnostics (Carlini et al. 2019)")
    diag.add_argument("--model", default="shortrun", choices=MODEL_NAMES)
    diag.add_argument("--n", type=positive_int, default=None,
                      help="test examples (default 100; --quick 16)")
    diag.add_argument("--quick", action="store_true", help="tiny sizes, for tests and smoke runs")
    diag.add_argument("--seed", type=int, default=0)
    diag.add_argument("--out", default=None,
                      help="output directory (default results/diagnostics/<dataset>-<model>)")
    _add_common(diag)
    diag.set_defaults(func=cmd_diagnose)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from robbench.attacks.registry import ATTACKS
    from robbench.models.config import MODEL_NAMES
    from robbench.run_grid import RunConfig, execute, load_run_config
    from robbench.tables import comparison_table

    device = resolve_device(args.device)
    if args.resume:
        config = load_run_config(Path(args.out) / args.resume)
    else:
        settings = {k: getattr(args, k) for k in ATTACK_SETTINGS if getattr(args, k) is not None}
        config = RunConfig(
            dataset=args.dataset,
            models=parse_names(args.models, MODEL_NAMES, "model"),
            attacks=parse_names(args.attack, list(ATTACKS), "attack"),
            eps=parse_floats(args.eps) if args.eps else None,
            n=args.n,
            draws=args.draws,
            seed=args.seed,
            backend=args.backend,
            params=settings,
        )
    run_dir, summary = execute(config, args.out, device=device, batch_size=args.batch_size,
                               data_dir=args.data_dir, quiet=args.quiet, run_dir=args.run_dir)
    print(comparison_table(summary, "md"), end="")
    print(f"\nwritten: {run_dir}/summary.csv, summary.md, config.json")
    if getattr(args, "diagnostics", False):
        for name in config.models:
            print(f"\ndiagnostics: {name}")
            _diagnose(name, config.dataset, config.n, False, config.seed,
                      Path(run_dir) / "diagnostics" / name, device, args.data_dir, args.quiet)
    return 0


def _diagnose(model: str, dataset: str, n: int | None, quick: bool, seed: int, out: Path,
              device: str, data_dir: str | None, quiet: bool) -> int:
    from robbench.attacks.diagnostics import DiagnoseConfig, diagnose_and_report, format_table

    cfg = DiagnoseConfig.quick() if quick else DiagnoseConfig()
    cfg.seed = seed
    if n is not None:
        cfg.n = n
    frame, seconds = diagnose_and_report(model, dataset, out, config=cfg, device=device,
                                         data_dir=data_dir, quiet=quiet)
    print(format_table(frame), end="")
    failed = int((frame["status"] == "FAIL").sum())
    print(f"\n{'FAILED: ' + str(failed) + ' check(s)' if failed else 'all checks passed'} "
          f"in {seconds:.0f} s; written: {out}/diagnostics.csv, diagnostics.md")
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    default = Path("results/diagnostics") / f"{args.dataset}-{args.model}"
    out = Path(args.out) if args.out else default
    return _diagnose(args.model, args.dataset, args.n, args.quick, args.seed, out,
                     resolve_device(args.device), args.data_dir, args.quiet)


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from robbench.models.config import ModelConfig, TrainConfig
    from robbench.models.registry import cached_path, default_spec, override_spec, train_and_save

    fields = {f.name for c in (ModelConfig, TrainConfig) for f in dataclasses.fields(c)}
    spec = override_spec(default_spec(args.model, args.dataset),
                         **{k: v for k, v in vars(args).items() if k in fields})
    path = Path(args.out) if args.out else cached_path(spec)
    command = args.command_line
    _, card = train_and_save(spec, path, data_dir=args.data_dir, device=resolve_device(args.device),
                             quiet=args.quiet, command=command)
    print(f"{args.model} on {args.dataset}: clean test accuracy {card['clean_test_accuracy']:.4f} "
          f"in {card['train_seconds']:.1f} s -> {path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from robbench.attacks.registry import ATTACKS
    from robbench.datasets import DATASETS
    from robbench.models.config import MODEL_NAMES
    from robbench.models.registry import default_spec, find_checkpoint

    print("datasets: " + ", ".join(DATASETS))
    print("models:")
    width = max(map(len, DATASETS))
    for dataset in DATASETS:
        for name in MODEL_NAMES:
            path = find_checkpoint(default_spec(name, dataset))
            status = f"checkpoint {path}" if path else "no checkpoint (trained on first use)"
            print(f"  {name:9s} {dataset:{width}s} {status}")
    print("attacks:")
    for spec in ATTACKS.values():
        print(f"  {spec.name:16s} {spec.norm:5s} {'/'.join(spec.backends):22s} {spec.description}")
    return 0


def find_runs(given: Sequence[str], root: str) -> list[Path]:
    """The run directories named on the command line, else every run under ``root``."""
    for run in given:
        if not (Path(run) / "cells").is_dir():
            raise UsageError(f"run {run!r} is not a run directory (no cells/); give a directory "
                             f"made by `robbench run`, e.g. {root}/<run id>")
    runs = [Path(r) for r in given] or sorted(p.parent for p in Path(root).glob("*/config.json"))
    if not runs:
        raise UsageError(f"no runs given and none found under {root!r}; pass run directories")
    return runs


def cmd_table(args: argparse.Namespace) -> int:
    from robbench.tables import results_table

    text = results_table(find_runs(args.runs, args.root), args.format, args.diagnostics,
                         args.first)
    if args.out:
        from robbench.models.checkpoint_io import atomic_write_bytes

        atomic_write_bytes(Path(args.out), text.encode())
        print(f"written: {args.out}")
    else:
        print(text, end="")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from robbench.plots import make_plots

    written = make_plots(find_runs(args.runs, args.root), args.out, data_dir=args.data_dir)
    print("written: " + ", ".join(str(p) for p in written))
    return 0


def cmd_headline(args: argparse.Namespace) -> int:
    from robbench.attacks.diagnostics import DiagnoseConfig
    from robbench.headline import HEADLINE_NAMES, HeadlineConfig, run_headline

    diagnose = DiagnoseConfig(n=args.diagnostics_n, seed=args.seed) if args.diagnostics else None
    n_attack = attack_sizes(args.n_attack) if args.n_attack else {}
    cfg = HeadlineConfig(dataset=args.dataset, n=args.n, n_eot=args.n_eot, draws=args.draws,
                         eot=args.eot, seed=args.seed, diagnostics=diagnose, n_attack=n_attack)
    if args.attacks:
        cfg.attacks = tuple(parse_names(args.attacks, HEADLINE_NAMES, "headline attack"))
    out = Path(args.out) if args.out else Path("results") / args.dataset
    record = run_headline(cfg, out, device=resolve_device(args.device), data_dir=args.data_dir,
                          batch_size=args.batch_size, quiet=args.quiet)
    print((out / "table.md").read_text(), end="")
    total = sum(record["seconds"].values())
    print(f"\nheadline of {args.dataset}: {total:.0f} s of compute in its cells and diagnostics; "
          f"written: {out}/table.md, table.csv, "
          f"figures/, runs/, headline.json")
    return 0


def cmd_chains(args: argparse.Namespace) -> int:
    from robbench.chains import chains_study

    if not args.chains:
        raise UsageError("chains '' is empty; give chain counts, e.g. 1,5,10")
    out = Path(args.out) if args.out else Path("results") / args.dataset
    path = chains_study(args.dataset, args.chains, out, n=args.n, seed=args.seed,
                        device=resolve_device(args.device), data_dir=args.data_dir,
                        command=args.command_line)
    print(path.read_text(), end="")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from robbench import regression_check

    if args.update:
        return regression_check.update(args.baseline, quiet=args.quiet)
    return regression_check.check(args.baseline, quiet=args.quiet)


def _sizes(text: str, what: str, words: tuple[str, ...] = ("all",)) -> list[int | str | None]:
    sizes: list[int | str | None] = []
    for part in text.split(","):
        part = part.strip()
        if part in words:
            sizes.append(None if part == "all" else part)
        elif part.isdigit() and int(part) > 0:
            sizes.append(int(part))
        else:
            allowed = " or ".join(["a positive integer"] + [repr(w) for w in words])
            raise UsageError(f"{what} {part!r} is not {allowed}")
    return sizes


def cmd_unlabelled(args: argparse.Namespace) -> int:
    from robbench.unlabelled import unlabelled_study, write_study

    labels = _sizes(args.labels, "labels", words=())
    sizes = _sizes(args.unlabelled, "unlabelled", ("all", "labels"))
    out = Path(args.out) if args.out else Path("results") / args.dataset
    frame = unlabelled_study(args.dataset, labels, sizes, budget=args.budget, n_eval=args.n,
                             eps=args.eps, train_seeds=args.train_seeds, data_dir=args.data_dir,
                             device=resolve_device(args.device), quiet=args.quiet,
                             grid_dir=out / "unlabelled")
    path = write_study(frame, out, args.command_line)
    print(path.read_text(), end="")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from robbench.synthesis import synthesize

    if args.model != "shortrun":
        raise UsageError(f"model {args.model!r} cannot synthesise; allowed: shortrun")
    out = Path(args.out) if args.out else Path("results") / args.dataset / "synth"
    record = synthesize(args.dataset, out, n=args.n, seed=args.seed, data_dir=args.data_dir,
                        device=resolve_device(args.device))
    print(f"Fréchet distance on ConvNet features ({record['features']}), n={record['n']}:")
    for key in ("fd_samples_vs_test", "fd_reconstructions_vs_test", "fd_train_vs_test"):
        print(f"  {key[3:].replace('_', ' '):28s} {record[key]:.4f}")
    print(f"written: {out}/" + ", ".join(record["files"]) + ", synthesis.json")
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    from robbench.perf import PerfSettings, perf_markdown, run_perf

    device = torch.device(resolve_device(args.device))
    full = args.sizes == "full" or (args.sizes == "auto" and device.type == "cuda")
    settings = PerfSettings() if full else PerfSettings.cpu_smoke()
    print(perf_markdown(run_perf(settings, device, Path(args.out), args.data_dir)), end="")
    return 0


def cmd_readme(args: argparse.Namespace) -> int:
    from robbench.readme_sync import sync_readme

    stale = sync_readme(Path(args.file), check=args.check)
    for path in stale:
        print(f"{'stale' if args.check else 'updated'}: {path}")
    return 1 if args.check and stale else 0


def main(argv: Sequence[str] | None = None) -> int:
    from robbench.attacks.threat_model import ThreatModelViolation
    from robbench.datasets import DataNotFoundError
    from robbench.models.checkpoint_io import CheckpointError
    from robbench.presets import apply_preset

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = "robbench " + shlex.join(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        apply_preset(args)
        return func(args)
    except (UsageError, ValueError, FileNotFoundError, DataNotFoundError, CheckpointError) as exc:
        print(f"robbench: error: {exc}", file=sys.stderr)
        return 2
    except ThreatModelViolation as exc:
        print(f"robbench: threat-model violation (no result written): {exc}", file=sys.stderr)
        return 3
    except torch.cuda.OutOfMemoryError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
        print(f"robbench: error: {reason}; rerun with a smaller --batch-size or, for EOT "
              "attacks, --max-batch ROWS (images x noise draws per pass through the chain); a "
              "run resumes from its finished cells", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("robbench: interrupted; finished cells and crafted batches are kept, rerun the "
              "same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
