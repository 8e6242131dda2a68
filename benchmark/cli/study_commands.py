"""``robbench headline``, ``diagnose``, ``binarization``, ``chains``, ``synth``,
``unlabelled`` and ``ablation``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robbench.attacks.registry import AUTO, attack_params
from robbench.cli.options import (
    ATTACK_SETTINGS,
    add_attack_settings,
    add_batch_size,
    add_common,
    add_models,
    file_model_options,
    models_of,
)
from robbench.cli.values import (
    UsageError,
    attack_sizes,
    eot_value,
    int_tuple,
    key_values,
    named_setting,
    nonnegative_float,
    parse_names,
    positive_float,
    positive_int,
    seed_tuple,
    size_list,
)
from robbench.devices import resolve_device
from robbench.models.matched_control import MATCHED, MATCHED_DATASETS
from robbench.models.model_file import display_name
from robbench.runs.distributed import launched_world
from robbench.studies.ablation import DEFAULT_GRID, AblationConfig, run_ablation
from robbench.studies.binarization import BinarizationConfig
from robbench.studies.binarization_report import binarization_named
from robbench.studies.chains import chains_study
from robbench.studies.diagnostics import RERUNNABLE, DiagnoseConfig
from robbench.studies.diagnostics_report import diagnose_named, report_verdict, rerun_check
from robbench.studies.headline import HeadlineConfig, run_headline_named
from robbench.studies.headline_protocol import HEADLINE_NAMES
from robbench.studies.synthesis import synthesize
from robbench.studies.unlabelled import unlabelled_study, write_study


def add_headline(sub: argparse._SubParsersAction) -> None:
    head = sub.add_parser("headline", help="the full benchmark of a dataset: every attack, "
                          "diagnostics, table and figures into one results directory")
    add_models(head, default_help=f"convnet and shortrun, and {MATCHED} on "
                                  f"{' and '.join(MATCHED_DATASETS)}")
    head.add_argument("--n", type=positive_int, default=None, help="test examples (default all)")
    head.add_argument("--n-eot", type=positive_int, default=1000, dest="n_eot",
                      help="test examples for EOT-PGD, APGD, AutoAttack-rand and Square")
    head.add_argument("--n-attack", default=None, dest="n_attack", metavar="NAME=N,...",
                      help="test examples for single attacks, e.g. square=200 (overrides --n-eot "
                      "and --n for them)")
    head.add_argument("--draws", type=positive_int, default=50,
                      help="fresh passes R scoring each example of a random model (all-draws "
                           "is also reported at R = 10)")
    head.add_argument("--selection-draws", type=positive_int, default=50,
                      dest="selection_draws",
                      help="further passes used only to choose the per-example worst case")
    head.add_argument("--eot", type=eot_value, default=16,
                      help="noise draws M of EOT-PGD and EOT-PGD-L2 ('auto': by convergence)")
    head.add_argument("--attacks", default=None,
                      help="comma-separated subset of the headline attacks (default all)")
    head.add_argument("--diagnostics-n", type=positive_int, default=100, dest="diagnostics_n")
    head.add_argument("--no-diagnostics", dest="diagnostics", action="store_false")
    head.add_argument("--seed", type=int, default=0)
    add_batch_size(head)
    head.add_argument("--out", default=None, help="directory (default results/<dataset>)")
    add_common(head)
    head.set_defaults(func=cmd_headline)


def cmd_headline(args: argparse.Namespace) -> int:
    diagnose = DiagnoseConfig(n=args.diagnostics_n, seed=args.seed) if args.diagnostics else None
    cfg = HeadlineConfig(dataset=args.dataset, n=args.n,
                         models=tuple(models_of(args)) if args.model else None,
                         n_eot=args.n_eot, draws=args.draws,
                         selection_draws=args.selection_draws, eot=args.eot, seed=args.seed,
                         diagnostics=diagnose,
                         n_attack=attack_sizes(args.n_attack) if args.n_attack else {})
    if args.attacks:
        cfg.attacks = tuple(parse_names(args.attacks, HEADLINE_NAMES, "headline attack"))
    out = Path(args.out) if args.out else Path("results") / args.dataset
    record = run_headline_named(cfg, out, device=resolve_device(args.device),
                                data_dir=args.data_dir, batch_size=args.batch_size,
                                quiet=args.quiet, **file_model_options(args))
    if record is None:  # another rank of a torchrun job: rank 0 reports
        return 0
    print((out / "table.md").read_text(), end="")
    total = sum(record["seconds"].values())
    print(f"\nheadline of {args.dataset}: {total:.0f} s of compute in its cells and diagnostics; "
          f"written: {out}/table.md, table.csv, figures/, runs/, headline.json")
    return 0


def add_diagnose(sub: argparse._SubParsersAction) -> None:
    diag = sub.add_parser("diagnose", help="gradient-masking diagnostics (Carlini et al. 2019)")
    add_models(diag, several=False, default=("shortrun",))
    diag.add_argument("--n", type=positive_int, default=None,
                      help="test examples (default 100; --quick 16)")
    diag.add_argument("--quick", action="store_true", help="tiny sizes, for tests and smoke runs")
    diag.add_argument("--seed", type=int, default=0)
    diag.add_argument("--out", default=None,
                      help="output directory (default results/diagnostics/<dataset>-<model>)")
    diag.add_argument("--rerun", choices=sorted(RERUNNABLE), default=None,
                      help="rerun only this check of the report in --out, on the model, weights "
                      "and settings its config.json records, and replace its rows")
    add_common(diag)
    diag.set_defaults(func=cmd_diagnose)


def cmd_diagnose(args: argparse.Namespace) -> int:
    if args.rerun:
        if not args.out:
            raise UsageError("--rerun needs --out: the directory of the report to update")
        frame, seconds = rerun_check(args.rerun, args.out, device=resolve_device(args.device),
                                       data_dir=args.data_dir, quiet=args.quiet)
        print(report_verdict(frame, seconds, args.out))
        return 0
    (spec,) = models_of(args)
    cfg = DiagnoseConfig.quick() if args.quick else DiagnoseConfig()
    cfg.seed = args.seed
    cfg.n = args.n or cfg.n
    default = Path("results/diagnostics") / f"{args.dataset}-{display_name(spec)}"
    out = Path(args.out) if args.out else default
    frame, seconds = diagnose_named(spec, args.dataset, out, config=cfg,
                                    device=resolve_device(args.device), data_dir=args.data_dir,
                                    quiet=args.quiet, **file_model_options(args))
    if launched_world().main:
        print(report_verdict(frame, seconds, out))
    return 0


def add_binarization(sub: argparse._SubParsersAction) -> None:
    test = sub.add_parser("binarization", help="the binarization test (Zimmermann et al. "
                          "2022): is the attack strong enough on this model?")
    add_models(test, several=False, default=("shortrun",))
    test.add_argument("--attack", default="eot-pgd",
                      help="the attack under test (default eot-pgd with the headline's EOT 16)")
    test.add_argument("--eps", type=positive_float, default=0.1)
    test.add_argument("--n", type=positive_int, default=50,
                      help="correctly classified test images to test (default 50)")
    test.add_argument("--pool", type=positive_int, default=100,
                      help="the first test images they are taken from (default 100)")
    test.add_argument("--draws", type=positive_int, default=64,
                      help="fresh passes R of a random model that check each construction and "
                      "score its adversarial example (default 64)")
    test.add_argument("--threshold", type=positive_float, default=0.95,
                      help="PASS when the success rate's interval reaches it (default 0.95)")
    test.add_argument("--seed", type=int, default=0)
    test.add_argument("--out", default=None, help="directory of binarization.csv (default "
                      "results/<dataset>/diagnostics/binarization)")
    add_attack_settings(test)
    add_common(test)
    test.set_defaults(func=cmd_binarization)


def cmd_binarization(args: argparse.Namespace) -> int:
    (spec,) = models_of(args)
    settings = {k: getattr(args, k) for k in ATTACK_SETTINGS if getattr(args, k) is not None}
    if args.attack == "eot-pgd":
        settings.setdefault("eot", 16)
    if settings.get("eot") == AUTO:
        raise UsageError("eot 'auto' is not available in the binarization test; give a number")
    if args.threshold > 1:
        raise UsageError(f"threshold {args.threshold} must lie in (0, 1]")
    attack_params(args.attack, **settings)  # an unknown attack or setting fails here
    config = BinarizationConfig(n=args.n, threshold=args.threshold, attack=args.attack,
                                settings=settings, draws=args.draws)
    out = Path(args.out) if args.out else Path("results") / args.dataset / "diagnostics" / \
        "binarization"
    row = binarization_named(spec, args.dataset, out, eps=args.eps, config=config,
                             pool=args.pool, seed=args.seed,
                             device=resolve_device(args.device), data_dir=args.data_dir,
                             quiet=args.quiet, **file_model_options(args))
    print(f"{row['model']} {row['setting']} at eps {row['eps']:g}: {row['status']}; "
          f"{row['detail']}\nwritten: {out}/binarization.csv, binarization.md, samples/")
    return 0


def add_chains(sub: argparse._SubParsersAction) -> None:
    chains = sub.add_parser("chains", help="Short Run clean accuracy with several chains per "
                            "input (mean logits, mean z, vote) beside the ConvNet")
    chains.add_argument("--chains", type=int_tuple, default=(1, 5),
                        help="comma-separated chain counts, e.g. 1,5,10")
    chains.add_argument("--n", type=positive_int, default=None, help="test examples (default all)")
    chains.add_argument("--seed", type=int, default=0)
    chains.add_argument("--out", default=None, help="directory (default results/<dataset>)")
    add_common(chains)
    chains.set_defaults(func=cmd_chains)


def cmd_chains(args: argparse.Namespace) -> int:
    if not args.chains:
        raise UsageError("chains '' is empty; give chain counts, e.g. 1,5,10")
    out = Path(args.out) if args.out else Path("results") / args.dataset
    path = chains_study(args.dataset, args.chains, out, n=args.n, seed=args.seed,
                        device=resolve_device(args.device), data_dir=args.data_dir,
                        command=args.command_line)
    print(path.read_text(), end="")
    return 0


def add_synth(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser("synth", help="Short Run samples, reconstructions, Fréchet distance")
    synth.add_argument("--model", default="shortrun",
                       help="the generative model (only shortrun synthesises)")
    synth.add_argument("--n", type=positive_int, default=64, help="samples in the grid")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", default=None, help="directory (default results/<dataset>/synth)")
    add_common(synth)
    synth.set_defaults(func=cmd_synth)


def cmd_synth(args: argparse.Namespace) -> int:
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


def add_unlabelled(sub: argparse._SubParsersAction) -> None:
    unl = sub.add_parser("unlabelled", help="claim 2: N labels, M unlabelled images")
    unl.add_argument("--labels", default="100", help="comma-separated label budgets N")
    unl.add_argument("--unlabelled", default="labels,all",
                     help="comma-separated generative-stage sizes M, counting the N labelled "
                          "images ('all' = training set, 'labels' = N; a size below N is "
                          "skipped for that N)")
    unl.add_argument("--budget", type=positive_float, default=1.0,
                     help="optimiser steps per stage, as a fraction of the full-data default")
    unl.add_argument("--base", default="", metavar="'KEY=VALUE ...'",
                     help="changes to the registered recipe before its steps are scaled, e.g. "
                          "'bptt_epochs=3'")
    unl.add_argument("--n", type=positive_int, default=None, help="test examples")
    unl.add_argument("--eps", type=nonnegative_float, default=0.1)
    unl.add_argument("--train-seeds", type=seed_tuple, default=(0,), metavar="S,…",
                     help="train every model once per seed (its own labelled subset and initial "
                          "weights); with several, the table gives mean ± sd over seeds")
    unl.add_argument("--out", default=None, help="directory (default results/<dataset>)")
    add_common(unl)
    unl.set_defaults(func=cmd_unlabelled)


def cmd_unlabelled(args: argparse.Namespace) -> int:
    labels = size_list(args.labels, "labels", words=())
    sizes = size_list(args.unlabelled, "unlabelled", ("all", "labels"))
    out = Path(args.out) if args.out else Path("results") / args.dataset
    frame = unlabelled_study(args.dataset, labels, sizes, budget=args.budget, n_eval=args.n,
                             eps=args.eps, train_seeds=args.train_seeds,
                             base=key_values(args.base, "--base"), data_dir=args.data_dir,
                             device=resolve_device(args.device), quiet=args.quiet,
                             grid_dir=out / "unlabelled")
    path = write_study(frame, out, args.command_line)
    print(path.read_text(), end="")
    return 0


def add_ablation(sub: argparse._SubParsersAction) -> None:
    abl = sub.add_parser("ablation", help="which settings of the Short Run recipe buy clean "
                         "accuracy: a grid trained on a training subset, one row per setting, "
                         "resumable")
    abl.add_argument("--setting", action="append", default=None,
                     metavar="'NAME: KEY=VALUE ...'",
                     help="a setting of the grid, the dataset's recipe with these changes "
                          "(repeatable; default: " + ", ".join(DEFAULT_GRID) + ")")
    abl.add_argument("--base", default="", metavar="'KEY=VALUE ...'",
                     help="changes every setting shares")
    abl.add_argument("--subset", type=positive_int, default=10_000,
                     help="training images (the labelled set, balanced, and the generative "
                          "pool)")
    abl.add_argument("--n", type=positive_int, default=10_000, help="test images scored")
    abl.add_argument("--seed", type=int, default=0)
    abl.add_argument("--max-minutes", type=positive_float, default=None, dest="max_minutes",
                     metavar="M", help="stop at the last epoch boundary before M minutes; the "
                                       "same command continues")
    abl.add_argument("--out", default=None, help="directory (default results/<dataset>/ablation)")
    add_common(abl)
    abl.set_defaults(func=cmd_ablation)


def cmd_ablation(args: argparse.Namespace) -> int:
    grid = dict(named_setting(s) for s in args.setting) if args.setting else dict(DEFAULT_GRID)
    if args.setting and len(grid) < len(args.setting):
        raise UsageError("setting names must differ; a name is given twice")
    cfg = AblationConfig(dataset=args.dataset, grid=grid, base=key_values(args.base, "--base"),
                         subset=args.subset, n=args.n, seed=args.seed)
    out = Path(args.out) if args.out else Path("results") / args.dataset / "ablation"
    try:
        frame, done = run_ablation(cfg, out, max_minutes=args.max_minutes,
                                   data_dir=args.data_dir, device=resolve_device(args.device),
                                   quiet=args.quiet, command=args.command_line)
    except KeyboardInterrupt:
        print("robbench: interrupted; finished settings and the last finished epoch are kept: "
              "rerun the same command to continue", file=sys.stderr)
        return 130
    if len(frame):
        print((out / "ablation.md").read_text(), end="")
    print(f"ablation of {args.dataset}: {len(frame)} of {len(grid)} settings done"
          + ("" if done else "; paused: rerun the same command to continue"))
    return 0
