"""``robbench train``, ``curve`` (learning curves), ``perf`` (the performance suite) and
``readme``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from robbench.cli.options import add_common, add_preset
from robbench.cli.reference import write_references
from robbench.cli.values import int_tuple, nonnegative_float, positive_float, positive_int
from robbench.defenses.catalog import TRAINED_DEFENSES
from robbench.defenses.training import cached_defense_path, train_defense
from robbench.devices import resolve_device
from robbench.models.config import (
    ACTIVATIONS,
    MODEL_NAMES,
    OBJECTIVES,
    OPTIMIZERS,
    ModelConfig,
    TrainConfig,
)
from robbench.models.matched_control import (
    MATCHED,
    cached_matched_path,
    shortrun_accuracy,
    train_matched,
)
from robbench.models.registry import cached_path, default_spec, override_spec, train_in_pieces
from robbench.models.training_loop import PieceLimit
from robbench.models.training_state import resume_dir
from robbench.perf.memory import DEFAULT_CASES
from robbench.perf.suite import PERF_SUITES, run_suite
from robbench.report.learning_curve import write_learning_curves
from robbench.report.readme_sync import documentation_pages, sync_readme


def add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a zoo model and cache its checkpoint")
    train.add_argument("--model", required=True,
                       choices=(*MODEL_NAMES, MATCHED, *TRAINED_DEFENSES),
                       help="a zoo model, the accuracy-matched ConvNet, or a defense whose base "
                       "trains through it (their registered settings; the other options apply "
                       "to zoo models)")
    train.add_argument("--match-accuracy", type=positive_float, dest="match_accuracy",
                       metavar="A", help=f"{MATCHED}: the clean test accuracy to stop at "
                       "(default: the zoo Short Run classifier's, from its card)")
    train.add_argument("--objective", choices=OBJECTIVES)
    train.add_argument("--epochs", type=positive_int)
    for stage in ("generative", "discriminative", "bptt"):
        train.add_argument(f"--{stage}-epochs", type=int, dest=f"{stage}_epochs")
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
    train.add_argument("--resume", action="store_true",
                       help="continue the training from its last finished epoch (its state is "
                            "kept in OUT's NAME.resume/ directory after every epoch)")
    train.add_argument("--max-minutes", type=positive_float, dest="max_minutes", metavar="M",
                       help="stop this piece at the last epoch boundary before M minutes; "
                            "continue later with --resume")
    train.add_argument("--max-epochs", type=positive_int, dest="max_epochs", metavar="E",
                       help="stop this piece after E epochs (passes, counted over the stages)")
    train.add_argument("--monitor", type=positive_int, default=None, metavar="N",
                       help="after every epoch of a labelled stage, the accuracy on the first N "
                       "test images, kept in the card's epoch_history (a learning curve; the "
                       "weights are those of a training without it)")
    add_preset(train)
    add_common(train)
    train.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    if args.model in TRAINED_DEFENSES:
        return _train_defense(args)
    if args.model == MATCHED:
        return _train_matched(args)
    fields = {f.name for c in (ModelConfig, TrainConfig) for f in dataclasses.fields(c)}
    spec = override_spec(default_spec(args.model, args.dataset),
                         **{k: v for k, v in vars(args).items() if k in fields})
    path = Path(args.out) if args.out else cached_path(spec)
    limit = (PieceLimit(args.max_minutes, args.max_epochs)
             if args.max_minutes or args.max_epochs else None)
    try:
        progress, card = train_in_pieces(spec, path, resume=args.resume, limit=limit,
                                          data_dir=args.data_dir,
                                          device=resolve_device(args.device),
                                          quiet=args.quiet, command=args.command_line,
                                          monitor=args.monitor)
    except KeyboardInterrupt:
        print(f"robbench: interrupted; the training's last finished epoch is kept in "
              f"{resume_dir(path)}: rerun with --resume to continue", file=sys.stderr)
        return 130
    name = f"{args.model} on {args.dataset}"
    if progress is None:
        print(f"{name}: already trained -> {path} (clean test accuracy "
              f"{card['clean_test_accuracy']:.4f}); nothing to resume")
    elif card is None:
        again = args.command_line + ("" if args.resume else " --resume")
        print(f"{name}: paused at {progress.position()} ({progress.pieces[-1]['epochs']} "
              f"epochs in {progress.pieces[-1]['seconds']:.1f} s; {progress.seconds:.1f} s in "
              f"all); state in {resume_dir(path)}; continue with: {again}")
    else:
        print(f"{name}: clean test accuracy {card['clean_test_accuracy']:.4f} in "
              f"{card['train_seconds']:.1f} s ({len(card['pieces'])} piece(s)) -> {path}")
    return 0


def _train_defense(args: argparse.Namespace) -> int:
    path = Path(args.out) if args.out else cached_defense_path(args.model, args.dataset)
    _, card = train_defense(args.model, args.dataset, path, device=resolve_device(args.device),
                            data_dir=args.data_dir, quiet=args.quiet,
                            command=args.command_line)
    print(f"{args.model} on {args.dataset}: clean test accuracy {card['clean_test_accuracy']:.4f} "
          f"in {card['train_seconds']:.1f} s -> {path}")
    return 0


def _train_matched(args: argparse.Namespace) -> int:
    path = Path(args.out) if args.out else cached_matched_path(
        args.dataset, args.match_accuracy or shortrun_accuracy(args.dataset,
                                                               data_dir=args.data_dir))
    _, card = train_matched(args.dataset, path, target=args.match_accuracy,
                            device=resolve_device(args.device), data_dir=args.data_dir,
                            quiet=args.quiet, command=args.command_line)
    match = card["matched"]
    print(f"{MATCHED} on {args.dataset}: {match['steps']} of the recipe's "
          f"{match['full_recipe_steps']} steps, clean test accuracy "
          f"{card['clean_test_accuracy']:.4f} (target {match['target_accuracy']:.4f}) -> {path}")
    return 0


def add_curve(sub: argparse._SubParsersAction) -> None:
    curve = sub.add_parser("curve", help="learning curves of trainings (from their cards, or "
                           "their resume state while paused): a table and a figure")
    curve.add_argument("paths", nargs="+", metavar="PATH",
                       help="a model card (X.json), its checkpoint (X.safetensors) or a "
                       "training's resume state (X.resume/)")
    curve.add_argument("--out", required=True, help="directory for learning_curve.md, .csv, "
                       ".png and .svg")
    curve.add_argument("--target", type=positive_float, metavar="A",
                       help="draw the accuracy A as a dashed line")
    curve.set_defaults(func=cmd_curve)


def cmd_curve(args: argparse.Namespace) -> int:
    for path in write_learning_curves(args.paths, args.out, target=args.target,
                                      command=args.command_line):
        print(f"written: {path}")
    return 0


def add_perf(sub: argparse._SubParsersAction) -> None:
    perf = sub.add_parser("perf", help="the performance suite: fast paths timed against their "
                          "references, side by side in one run")
    perf.add_argument("suite", choices=tuple(PERF_SUITES),
                      help="; ".join(f"{k}: {v}" for k, v in PERF_SUITES.items()))
    perf.add_argument("--device", default="auto", help="auto | cpu | cuda")
    perf.add_argument("--sizes", default="auto", choices=("auto", "full", "cpu"),
                      help="chain: full = the GPU sizes (MNIST shape); cpu = a digits-sized "
                      "smoke (auto: full on CUDA, cpu otherwise)")
    perf.add_argument("--dataset", default=None, help="eot, memory: the model's dataset")
    perf.add_argument("--data-dir", default=None, help="dataset files (as for run)")
    perf.add_argument("--n", type=positive_int, default=None, help="test images timed")
    perf.add_argument("--batch", type=positive_int, default=None, help="images per batch")
    perf.add_argument("--eot", type=int_tuple, default=None, help="eot: comma-separated M")
    perf.add_argument("--steps", type=positive_int, default=None, help="attack steps")
    perf.add_argument("--repeats", type=positive_int, default=None)
    perf.add_argument("--untrained", action="store_true",
                      help="eot: time an untrained model of the dataset's size")
    perf.add_argument("--cases", default=DEFAULT_CASES, help="memory: NxM:CAP,... cases")
    perf.add_argument("--world-sizes", type=int_tuple, default=(1, 2), dest="world_sizes",
                      help="scaling: process counts")
    perf.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    perf.add_argument("--out", default="results/perf")
    perf.set_defaults(func=cmd_perf)


def cmd_perf(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    text = run_suite(args.suite, vars(args), resolve_device(args.device), args.command_line)
    print(text, end="")
    return 0


def add_readme(sub: argparse._SubParsersAction) -> None:
    readme = sub.add_parser("readme", help="refresh the blocks of README.md, docs/ and "
                            "results/*/README.md that quote generated results, and the "
                            "generated docs/cli.md and docs/api.md")
    readme.add_argument("--root", default=".", help="the repository (default: here)")
    readme.add_argument("--check", action="store_true", help="exit 1 if anything is stale")
    readme.set_defaults(func=cmd_readme)


def cmd_readme(args: argparse.Namespace) -> int:
    root = Path(args.root)
    pages = documentation_pages(root)
    for page in pages:  # every quoted file must exist before any page is rewritten
        sync_readme(page, check=True)
    stale = [f"{page}: {block}" for page in pages
             for block in sync_readme(page, check=args.check)]
    stale += write_references(root / "docs", args.parser, check=args.check)
    for item in stale:
        print(f"{'stale' if args.check else 'updated'}: {item}")
    return 1 if args.check and stale else 0
