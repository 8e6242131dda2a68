"""Runs of models and data given by name: the thin layer in front of the executor.

A model spec is a zoo name (``convnet``, ``shortrun``, a registered or installed name), a
file model ``PATH.py:FUNCTION[=NAME]``, a checkpoint robbench trained
``PATH.safetensors[=NAME]`` or a RobustBench model ``robustbench:...``; the
dataset is a robbench dataset name. Under ``torchrun`` this is where the process group is
joined.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from robbench.attacks.registry import get_attack
from robbench.attacks.target import Target
from robbench.data.datasets import DATASETS, Dataset, load_dataset
from robbench.defenses.catalog import DEFENSE_DATASETS, DEFENSE_NAMES, DEFENSES
from robbench.defenses.training import shipped_defense_path
from robbench.models.config import MODEL_NAMES
from robbench.models.matched_control import MATCHED, shipped_matched_path
from robbench.models.model_file import (
    display_name,
    is_model_file,
    is_trained_checkpoint,
    load_model_file,
    load_trained_checkpoint,
)
from robbench.models.normalized import parse_normalize
from robbench.models.registry import GPU_RECIPES, default_spec, find_checkpoint
from robbench.models.robustbench_source import INSTALL, is_robustbench, load_robustbench
from robbench.models.zoo import LoadedModel, load_named_model, model_names
from robbench.records.store import DirectoryStore
from robbench.runs.config import RunConfig
from robbench.runs.distributed import join_world
from robbench.runs.executor import execute


def file_option_for(spec: str, checkpoints: Mapping[str, str] | None,
                    file_models: Sequence[str], what: str = "--checkpoint") -> str | None:
    """The weights file (or other per-model option ``what``) given for a file model:
    ``{NAME: FILE}``, or ``{"": FILE}`` when only one file model is given."""
    if not checkpoints:
        return None
    name = display_name(spec)
    if name in checkpoints:
        return checkpoints[name]
    if "" in checkpoints:
        if len(file_models) != 1:
            raise ValueError(f"{what} VALUE fits one file model; with several, give "
                             f"{what} NAME=VALUE")
        return checkpoints[""] if spec == file_models[0] else None
    return None


def load_models(specs: Sequence[str], dataset: str, *, device: str = "cpu",
                data_dir: str | None = None, quiet: bool = True,
                checkpoints: Mapping[str, str] | None = None,
                normalize: Mapping[str, str] | None = None) -> dict[str, LoadedModel]:
    """{display name: loaded model} for every spec, in order (names must be distinct).
    ``checkpoints`` and ``normalize`` (``MEAN/STD``) apply to file models, by name."""
    file_models = [s for s in specs if is_model_file(s)]
    for what, given in (("--checkpoint", checkpoints), ("--normalize", normalize)):
        for name in given or {}:
            if name and name not in {display_name(s) for s in file_models}:
                raise ValueError(f"{what} names model {name!r}, which no --model "
                                 "PATH.py:FUNCTION gives")
    models: dict[str, LoadedModel] = {}
    for spec in specs:
        name = display_name(spec)
        if name in models:
            raise ValueError(f"model name {name!r} is given twice; name one "
                             "PATH.py:FUNCTION=NAME")
        if is_robustbench(spec):
            models[name] = load_robustbench(spec, dataset, device=device)
        elif is_trained_checkpoint(spec):
            models[name] = load_trained_checkpoint(spec, dataset, device=device)
        elif is_model_file(spec):
            stats = file_option_for(spec, normalize, file_models, "--normalize")
            models[name] = load_model_file(
                spec, dataset, device=device,
                checkpoint=file_option_for(spec, checkpoints, file_models),
                normalize=parse_normalize(stats) if stats else None)
        else:
            models[name] = load_named_model(spec, dataset, device=device, data_dir=data_dir,
                                            quiet=quiet)
    return models


def transfer_sources(config: RunConfig, models: Mapping[str, LoadedModel], device: str,
                     data_dir: str | None) -> dict[str, LoadedModel]:
    """The zoo's models of the dataset that a transfer attack may craft on, where the run's
    own models do not include them."""
    if not any(get_attack(a).needs_companions for a in config.attacks):
        return {}
    return {name: load_named_model(name, config.dataset, device=device, data_dir=data_dir)
            for name in MODEL_NAMES if name not in models}


def test_split(data: Dataset, n: int | None):
    """The first ``n`` test images and labels (all if None)."""
    n = len(data.x_test) if n is None else min(n, len(data.x_test))
    return data.x_test[:n], data.y_test[:n]


def run_named(config: RunConfig, run_dir: str | Path, *, device: str = "cpu",
              batch_size: int | None = None, data_dir: str | None = None, quiet: bool = False,
              checkpoints: Mapping[str, str] | None = None, stochastic: str | bool = "auto",
              normalize: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Load the config's dataset and models by name and run (or resume) it in ``run_dir``."""
    world, device = join_world(device)
    data = load_dataset(config.dataset, data_dir)
    x, y = test_split(data, config.n)
    models = load_models(config.models, config.dataset, device=device, data_dir=data_dir,
                         quiet=quiet, checkpoints=checkpoints, normalize=normalize)
    return execute(config, models, x, y, DirectoryStore(run_dir), device=device,
                   batch_size=batch_size, quiet=quiet, stochastic=stochastic,
                   companions=transfer_sources(config, models, device, data_dir),
                   classes=data.classes, world=world)


def run_targets_and_images(run_dir: str | Path, *, device: str = "cpu",
                           data_dir: str | None = None):
    """(targets, (test images, labels), note) of a run, for its example figures: its models
    loaded again by the names it records and treated as the run treated them; (None, None,
    why) where they cannot be loaded (a moved model file, data that is not here)."""
    meta = DirectoryStore(run_dir).read_meta() or {}
    config = meta.get("config", {})
    try:
        data = load_dataset(config["dataset"], data_dir)
        models = load_models(config["models"], config["dataset"], device=device,
                             data_dir=data_dir)
    except (KeyError, OSError, ValueError, RuntimeError) as exc:
        return None, None, f"example figures skipped: {exc}"
    recorded = meta.get("models", {})
    targets = {name: Target(m.module, bool(recorded.get(name, {}).get(
        "stochastic", getattr(m.module, "stochastic", False))), data.classes, name)
        for name, m in models.items()}
    return targets, (data.x_test, data.y_test), None


def run_models_listing() -> list[str]:
    """One line per (zoo model, dataset) with its checkpoint status, then the other names."""
    width = max(map(len, DATASETS))
    lines = []
    for dataset in DATASETS:
        for name in MODEL_NAMES:
            path = find_checkpoint(default_spec(name, dataset))
            status = (f"checkpoint {path.name}" if path else
                      "no checkpoint shipped (a GPU recipe: robbench train --model "
                      f"{name} --dataset {dataset})" if dataset in GPU_RECIPES else
                      "no checkpoint (trained on first use)")
            lines.append(f"{name:9s} {dataset:{width}s} {status}")
    lines += matched_listing()
    lines += defenses_listing()
    extra = [name for name in model_names()
             if name not in (*MODEL_NAMES, MATCHED, *DEFENSE_NAMES)]
    lines += [f"{name:9s} (registered or installed)" for name in extra]
    lines.append("robustbench:NAME  cifar10, cifar100: RobustBench's zoo (--threat-model Linf|L2; "
                 f"{INSTALL})")
    return lines


def matched_listing() -> list[str]:
    """The accuracy-matched ConvNet: its shipped checkpoints, else how it is made."""
    shipped = [d for d in DATASETS if shipped_matched_path(d).is_file()]
    where = (f"checkpoints for {', '.join(shipped)}; " if shipped else "") + \
        "elsewhere searched and trained on first use"
    return [f"{MATCHED} the ConvNet recipe stopped at the Short Run classifier's clean "
            f"accuracy ({where})"]


def defenses_listing() -> list[str]:
    """One line per defense of the zoo: what it is, and its own checkpoints where it has them."""
    lines = []
    for name, entry in DEFENSES.items():
        where = ""
        if entry.trained:
            shipped = [d for d in DEFENSE_DATASETS if shipped_defense_path(name, d).is_file()]
            where = f" [checkpoints: {', '.join(shipped) or 'none (trained on first use)'}]"
        lines.append(f"{name:13s} defense, {'/'.join(DEFENSE_DATASETS)}: "
                     f"{entry.description}{where}")
    return lines
