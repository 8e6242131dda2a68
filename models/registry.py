"""Model registry: (model, dataset) -> spec with defaults; load shipped, cached, or train."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robbench.data.datasets import load_dataset
from robbench.models.build import build_model
from robbench.models.checkpoint_io import load_checkpoint, read_card, save_checkpoint
from robbench.models.config import MODEL_NAMES, ModelConfig, ModelSpec, TrainConfig
from robbench.models.training import accuracy
from robbench.models.training_loop import PieceLimit, train_resumable
from robbench.models.training_state import StateStore, TrainingProgress, resume_dir
from robbench.version import __version__

SHIPPED_DIR = Path(__file__).parent / "checkpoints"

_DATASET_SHAPES = {"digits": (1, 8), "mnist": (1, 28), "fashion-mnist": (1, 28), "svhn": (3, 28),
                   "cifar10": (3, 32), "cifar100": (3, 32)}
_CLASSES = {"cifar100": 100}

_ARCH = {
    "digits": dict(width=32, latent=16, head_hidden=(64,), activation="mish", langevin_steps=20,
                   step_size=0.005, sigma=0.1),
    # Fischer (2020)'s MNIST settings (d = 32, K = 20, delta = 0.005, sigma = 0.3) at width 32 with
    # the digits model's Mish and MLP head. Its recipe (_TRAIN) takes 12 BPTT epochs, the lever
    # the MNIST ablation found (docs/studies.md): hours on one CPU thread, in --resume pieces.
    "mnist": dict(width=32, latent=32, head_hidden=(64,), activation="mish", langevin_steps=20,
                  step_size=0.005, sigma=0.3),
    # The thesis preset: its architecture and Langevin settings. Its sigma = 6.4 is on the
    # [-1, 1] image scale; on robbench's [0, 1] scale the same model has sigma = 3.2.
    "svhn": dict(arch="thesis", width=64, latent=200, head_hidden=(140, 80), activation="mish",
                 langevin_steps=20, step_size=0.015, sigma=3.2),
}
_TRAIN = {
    "digits": {
        "convnet": dict(epochs=30, lr=2e-3, batch_size=64),
        "shortrun": dict(objective="stages", generative_epochs=20, discriminative_epochs=10,
                         bptt_epochs=20, lr=2e-3, bptt_lr=1e-3, batch_size=64,
                         recon_weight=0.01),
    },
    "mnist": {
        "convnet": dict(epochs=12, lr=2e-3, batch_size=128, anneal_from=0.0),
        "shortrun": dict(objective="stages", generative_epochs=2, discriminative_epochs=1,
                         bptt_epochs=12, lr=2e-3, bptt_lr=1e-3, batch_size=128,
                         recon_weight=0.01, anneal_from=0.0),
    },
}
_ARCH["fashion-mnist"] = _ARCH["mnist"]
_TRAIN["fashion-mnist"] = _TRAIN["mnist"]
# The thesis: Ranger, lr 5e-4 (stages 1-2) and 1e-4 (stage 3), cosine annealing after 75% of
# the epochs, 10k labels (1k per class) and 40k images for the generative stage. Epoch counts
# and batch size are robbench's choice (the thesis summary does not fix them).
_THESIS_TRAIN = dict(optimizer="ranger", anneal_from=0.75, labels=10_000, batch_size=100)
_TRAIN["svhn"] = {
    "convnet": dict(epochs=30, lr=5e-4, **_THESIS_TRAIN),
    "shortrun": dict(objective="stages", generative_epochs=30, discriminative_epochs=10,
                     bptt_epochs=10, lr=5e-4, bptt_lr=1e-4, recon_weight=0.0,
                     unlabelled=40_000, **_THESIS_TRAIN),
}

# CIFAR-10/100: the thesis's architecture and Langevin settings at 32x32, trained on all 50,000
# labelled images with Adam and the thesis's learning rates and cosine annealing after 75%.
# A recipe for a GPU; no checkpoint is shipped until one is trained on the real data.
_ARCH["cifar10"] = _ARCH["cifar100"] = _ARCH["svhn"]
_CIFAR_TRAIN = dict(optimizer="adam", anneal_from=0.75, batch_size=100)
_TRAIN["cifar10"] = _TRAIN["cifar100"] = {
    "convnet": dict(epochs=30, lr=5e-4, **_CIFAR_TRAIN),
    "shortrun": dict(objective="stages", generative_epochs=30, discriminative_epochs=10,
                     bptt_epochs=10, lr=5e-4, bptt_lr=1e-4, recon_weight=0.0, **_CIFAR_TRAIN),
}
GPU_RECIPES = ("cifar10", "cifar100")
"""Datasets whose zoo recipe is sized for a GPU and ships no checkpoint."""


def default_spec(model: str, dataset: str) -> ModelSpec:
    """The registered defaults for ``model`` on ``dataset``."""
    if model not in MODEL_NAMES:
        raise ValueError(f"model {model!r} is unknown; allowed: {', '.join(MODEL_NAMES)}")
    if dataset not in _ARCH:
        raise ValueError(f"dataset {dataset!r} has no model defaults; allowed: {', '.join(_ARCH)}")
    channels, size = _DATASET_SHAPES[dataset]
    arch = ModelConfig(name=model, channels=channels, image_size=size,
                       classes=_CLASSES.get(dataset, 10), **_ARCH[dataset])
    return ModelSpec(dataset=dataset, model=arch, train=TrainConfig(**_TRAIN[dataset][model]))


def override_spec(spec: ModelSpec, **overrides: Any) -> ModelSpec:
    """A copy of ``spec`` with fields of its model or train config replaced by name."""
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    model_kw, train_kw = {}, {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in model_fields:
            model_kw[key] = value
        elif key in train_fields:
            train_kw[key] = value
        else:
            allowed = ", ".join(sorted(model_fields | train_fields))
            raise ValueError(f"setting {key!r} is unknown; allowed: {allowed}")
    return dataclasses.replace(
        spec,
        model=dataclasses.replace(spec.model, **model_kw),
        train=dataclasses.replace(spec.train, **train_kw),
    )


def typed_overrides(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with text values converted to the type their setting declares (as given on the
    command line: ``sigma=0.1``, ``objective=joint``, ``head_hidden=140,80``)."""
    types = {f.name: str(f.type) for c in (ModelConfig, TrainConfig)
             for f in dataclasses.fields(c)}
    out = {}
    for key, value in raw.items():
        if key not in types:
            raise ValueError(f"setting {key!r} is unknown; allowed: {', '.join(sorted(types))}")
        kind = types[key].split("[")[0].split(" ")[0]  # float, int, str, tuple (or X | None)
        if not isinstance(value, str) or kind == "str":
            out[key] = value
            continue
        try:
            out[key] = (tuple(int(v) for v in value.split(",") if v.strip()) if kind == "tuple"
                        else float(value) if kind == "float" else int(value))
        except ValueError:
            raise ValueError(f"setting {key}={value!r} is not {types[key]}") from None
    return out


# Raised whenever a change to training makes a spec train other weights, so that a model cached
# by an older robbench is retrained instead of reused. 2: initial weights seeded from the spec.
TRAINING_REVISION = 2


def cache_dir() -> Path:
    env = os.environ.get("ROBBENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "robbench" / "models"


def shipped_path(spec: ModelSpec) -> Path:
    return SHIPPED_DIR / f"{spec.dataset}-{spec.model.name}.safetensors"


def cached_path(spec: ModelSpec) -> Path:
    return cache_dir() / f"{spec.dataset}-{spec.model.name}-{spec.fingerprint()}.safetensors"


def _matches(path: Path, spec: ModelSpec, revision: int = 0) -> bool:
    if not path.is_file():
        return False
    card = read_card(path)
    return (ModelSpec.from_dict(card["spec"]) == spec
            and card.get("training_revision", 1) >= revision)


def find_checkpoint(spec: ModelSpec) -> Path | None:
    """The shipped checkpoint if it was trained from ``spec``, else one cached by the current
    training code, else None. (Shipped checkpoints are the reference weights whatever
    revision trained them; a stale cached one is retrained over.)"""
    if _matches(shipped_path(spec), spec):
        return shipped_path(spec)
    if _matches(cached_path(spec), spec, TRAINING_REVISION):
        return cached_path(spec)
    return None


def train_and_save(
    spec: ModelSpec,
    path: Path,
    *,
    data_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    quiet: bool = False,
    command: str | None = None,
    card_extra: dict[str, Any] | None = None,
) -> tuple[nn.Module, dict]:
    """Train ``spec`` from scratch, evaluate on the test split and write the checkpoint (with
    ``card_extra`` on its card).

    The weights depend only on ``spec`` (and the device and torch build), so the command on
    the model card retrains the same model.
    """
    data = load_dataset(spec.dataset, data_dir)
    # The initial weights come from the spec's seed, not from whatever the process drew before.
    torch.manual_seed(spec.train.seed)
    model = build_model(spec.model)
    progress = train_resumable(model, spec, data.x_train, data.y_train, device=device,
                               quiet=quiet, command=command)
    return model.eval(), _evaluate_and_save(model, spec, path, data, progress, device, command,
                                            card_extra)


def train_in_pieces(
    spec: ModelSpec,
    path: Path,
    *,
    resume: bool = False,
    limit: PieceLimit | None = None,
    data_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    quiet: bool = False,
    command: str | None = None,
    monitor: int | None = None,
) -> tuple[TrainingProgress | None, dict | None]:
    """Train ``spec`` into the checkpoint ``path`` with its state kept after every epoch in
    ``resume_dir(path)``; ``resume`` continues that state, ``limit`` ends this piece early;
    ``monitor`` > 0 records the accuracy on the first ``monitor`` test images after every
    labelled epoch (the card's learning curve).

    Returns (progress, card): the card once training has finished (its state is then
    removed), else None. A resume finds nothing to do if ``path`` already holds a finished
    training of ``spec``: (None, its card).
    """
    store = StateStore(resume_dir(path))
    if resume and not store.exists() and _matches(Path(path), spec):
        return None, {**read_card(path), "path": str(path)}
    data = load_dataset(spec.dataset, data_dir)
    torch.manual_seed(spec.train.seed)
    model = build_model(spec.model)
    watched = (data.x_test[:monitor], data.y_test[:monitor]) if monitor else None
    progress = train_resumable(model, spec, data.x_train, data.y_train, device=device,
                               quiet=quiet, store=store, resume=resume, limit=limit,
                               command=command, monitor=watched)
    if not progress.finished:
        return progress, None
    card = _evaluate_and_save(model, spec, path, data, progress, device, command)
    store.clear()
    return progress, card


def _evaluate_and_save(model: nn.Module, spec: ModelSpec, path: Path, data,
                       progress: TrainingProgress, device, command: str | None,
                       card_extra: dict[str, Any] | None = None) -> dict:
    """Clean test accuracy, then the checkpoint and its card (training seconds over all
    pieces, each piece's command, one row per epoch)."""
    torch.manual_seed(spec.train.seed)
    card = {
        "model": spec.model.name,
        "dataset": spec.dataset,
        "seed": spec.train.seed,
        "clean_test_accuracy": accuracy(model, data.x_test, data.y_test),
        "test_examples": len(data.x_test),
        "train_seconds": progress.seconds,
        "train_stats": progress.stats,
        "device": str(device),
        "torch_version": torch.__version__,
        "robbench_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "training_revision": TRAINING_REVISION,
        "pieces": progress.pieces,
        "epoch_history": progress.history,
        **(card_extra or {}),
    }
    save_checkpoint(model, spec, path, card)
    return {**read_card(path), "path": str(path)}


def load_zoo_model(
    model: str,
    dataset: str,
    *,
    device: str | torch.device = "cpu",
    spec: ModelSpec | None = None,
    data_dir: str | Path | None = None,
    quiet: bool = False,
) -> tuple[nn.Module, dict]:
    """Shipped checkpoint if one matches, else a cached one, else train, cache and return it."""
    spec = spec or default_spec(model, dataset)
    path = find_checkpoint(spec)
    if path is not None:
        loaded, card = load_checkpoint(path, device)
        return loaded, {**card, "path": str(path)}
    return train_and_save(spec, cached_path(spec), data_dir=data_dir, device=device, quiet=quiet)
