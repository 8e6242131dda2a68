"""Option groups that several commands share: data and device, models, attack settings."""

from __future__ import annotations

import argparse

from robbench.attacks.registry import BACKENDS, DEFAULT_BACKEND
from robbench.cli.presets import PRESETS
from robbench.cli.values import eot_value, name_value_pairs, nonnegative_float, positive_int
from robbench.data.datasets import DATASETS
from robbench.devices import DEVICES
from robbench.models.config import MODEL_NAMES
from robbench.models.matched_control import MATCHED
from robbench.models.robustbench_source import THREAT_MODELS, canonical_spec

ATTACK_OPTIONS: dict[str, dict] = {
    "--steps": dict(type=positive_int),
    "--step-size": dict(type=nonnegative_float, dest="step_size"),
    "--eot": dict(type=eot_value, help="noise draws per gradient (batched EOT), or 'auto': "
                  "the draws are chosen by convergence on a calibration subset"),
    "--restarts": dict(type=positive_int),
    "--loss": dict(choices=("ce", "margin", "dlr")),
    "--no-random-start": dict(dest="random_start", action="store_false", default=None),
    "--last-iterate": dict(dest="best_iterate", action="store_false", default=None,
                           help="PGD on a random model returns its last iterate instead of "
                                "each example's best (to measure what the best iterate adds)"),
    "--c": dict(type=nonnegative_float, help="CW trade-off constant (its first value, with the "
                "binary search)"),
    "--search-steps": dict(type=positive_int, dest="search_steps",
                           help="CW binary-search steps over c (1: c stays fixed)"),
    "--kappa": dict(type=nonnegative_float, help="CW confidence"),
    "--lr": dict(type=nonnegative_float, help="CW learning rate"),
    "--n-queries": dict(type=positive_int, dest="n_queries"),
    "--targets": dict(type=positive_int, help="target classes of APGD-T and FAB-T (the runner-up "
                      "classes of the clean logits, in turn)"),
    "--max-batch": dict(type=positive_int, dest="max_batch",
                        help="rows (images x noise draws) per pass through the model; default "
                             "on a CPU 2^19 pixels' worth (e.g. 668 rows of 28x28), on a GPU "
                             "no cap"),
}
ATTACK_SETTINGS = tuple(o.get("dest", flag[2:]) for flag, o in ATTACK_OPTIONS.items())
"""The attack parameters a user can override on the command line (``RunConfig.params`` keys)."""


def add_common(p: argparse.ArgumentParser) -> None:
    """--dataset, --data-dir, --device, --quiet."""
    p.add_argument("--dataset", default="digits", choices=DATASETS)
    p.add_argument("--data-dir", default=None,
                   help="directory with the dataset's files (default: $ROBBENCH_DATA or "
                        "~/.cache/robbench/data)")
    p.add_argument("--device", default="auto", help=" | ".join(DEVICES))
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_preset(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="thesis: SVHN with the thesis's models, Ranger training, 10k labels, "
                        "FGSM at eps 0.01-0.06 on its [-1, 1] scale, 1,000 test images")
    p.set_defaults(preset_parser=p)


def add_models(p: argparse.ArgumentParser, *, several: bool = True,
               default: tuple[str, ...] = MODEL_NAMES, default_help: str | None = None) -> None:
    """--model (a zoo, file or RobustBench model), --checkpoint, --threat-model, --normalize
    (``default_help`` says what the default is where it depends on other options)."""
    p.add_argument("--model", action="append" if several else "store", dest="model",
                   default=None, metavar="MODEL",
                   help=f"a zoo name ({', '.join(MODEL_NAMES)}, {MATCHED}, a defense of "
                        "`robbench list`, or one an installed package registers), a model "
                        "in a file, PATH.py:FUNCTION[=NAME], a checkpoint `robbench train` wrote, "
                        "PATH.safetensors[=NAME], or a RobustBench model, "
                        "robustbench:NAME or robustbench:DATASET/THREAT/NAME"
                        + (f"; repeatable (default: {default_help or ' and '.join(default)})"
                           if several else f" (default: {default[0]})"))
    p.add_argument("--checkpoint", action="append", default=[], metavar="[NAME=]FILE",
                   help="safetensors weights for a file model (NAME=FILE with several)")
    p.add_argument("--threat-model", default="Linf", choices=THREAT_MODELS, dest="threat_model",
                   help="the RobustBench leaderboard a robustbench:NAME model comes from")
    p.add_argument("--normalize", action="append", default=[], metavar="[NAME=]MEAN/STD",
                   help="a file model expects standardised inputs: robbench applies (x - MEAN)"
                        " / STD in front of it, so eps stays in [0, 1] pixel units (per "
                        "channel comma-separated, e.g. 0.4914,0.4822,0.4465/0.2471,0.2435,"
                        "0.2616; NAME=MEAN/STD with several)")
    p.set_defaults(model_default=list(default))


def add_stochastic(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stochastic", default="auto", choices=("auto", "true", "false"),
                   help="auto: detect randomness (two passes on the same batch); true/false "
                        "force a treatment (a random model forced false is still treated as "
                        "random, with a warning)")


def add_attack_settings(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("attack settings (override the attack's defaults)")
    for flag, options in ATTACK_OPTIONS.items():
        g.add_argument(flag, **options)


def add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKENDS,
                   help="robbench's own attacks (default), or torchattacks / foolbox / "
                        "autoattack (Croce & Hein's code) for the attacks they offer (extras "
                        "robbench[torchattacks], robbench[foolbox], robbench[autoattack])")


def models_of(args: argparse.Namespace) -> list[str]:
    """The model specs a command was given (its default if none), RobustBench names spelled
    out with the dataset and threat model."""
    given = args.model
    if given is None:
        return list(args.model_default)
    specs = [given] if isinstance(given, str) else list(given)
    return [canonical_spec(s, args.dataset, args.threat_model) for s in specs]


def stochastic_of(args: argparse.Namespace) -> str | bool:
    return {"auto": "auto", "true": True, "false": False}[args.stochastic]


def add_batch_size(parser: argparse.ArgumentParser) -> None:
    """``--batch-size``: images per batch; the default depends on the number of images only."""
    parser.add_argument("--batch-size", type=positive_int, default=None, dest="batch_size",
                        help="images per batch (they set the random draws; default: the "
                             "resumed run's, else n/8 rounded up, within 25-500, so that up to "
                             "8 torchrun processes share a run)")


def file_model_options(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """``checkpoints`` and ``normalize`` of the file models, by name, as the library takes
    them."""
    return {"checkpoints": name_value_pairs(args.checkpoint, "--checkpoint"),
            "normalize": name_value_pairs(args.normalize, "--normalize")}
