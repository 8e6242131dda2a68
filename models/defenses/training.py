"""Bases trained through their defense: noise injection and random resize-pad.

Liu et al. (2018) train the network under the noise it meets at test time, and Xie et al.
(2018)'s base sees resized and padded images; here the base is the dataset's ConvNet (its
registered training settings; for resize-pad, at the canvas width) trained through the
defense module, so every batch draws fresh randomness. The checkpoint holds the base's weights
and a card naming the defense and its settings; ``robbench train --model NAME`` retrains it.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robbench.data.datasets import load_dataset
from robbench.defenses.catalog import check_defense, wrap
from robbench.models.build import build_model
from robbench.models.checkpoint_io import load_checkpoint, read_card, save_checkpoint
from robbench.models.config import ModelSpec
from robbench.models.registry import (
    SHIPPED_DIR,
    TRAINING_REVISION,
    cache_dir,
    default_spec,
    override_spec,
)
from robbench.models.training import accuracy
from robbench.models.training_loop import train_model
from robbench.version import __version__


def base_spec(name: str, dataset: str) -> ModelSpec:
    """The ConvNet spec the defense's base trains from (resize-pad: at the canvas width)."""
    spec = default_spec("convnet", dataset)
    settings = check_defense(name).settings(dataset)
    if "out_size" in settings:
        spec = override_spec(spec, image_size=settings["out_size"])
    return spec


def defense_record(name: str, dataset: str) -> dict[str, Any]:
    """What a card says about the defense its base was trained through."""
    return {"name": name, **check_defense(name).settings(dataset)}


def shipped_defense_path(name: str, dataset: str) -> Path:
    return SHIPPED_DIR / f"{dataset}-{name}.safetensors"


def cached_defense_path(name: str, dataset: str) -> Path:
    blob = json.dumps([base_spec(name, dataset).to_dict(), defense_record(name, dataset)],
                      sort_keys=True).encode()
    return cache_dir() / f"{dataset}-{name}-{hashlib.sha256(blob).hexdigest()[:12]}.safetensors"


def _matches(path: Path, name: str, dataset: str) -> bool:
    if not path.is_file():
        return False
    card = read_card(path)
    return (ModelSpec.from_dict(card["spec"]) == base_spec(name, dataset)
            and card.get("defense") == defense_record(name, dataset))


def train_defense(name: str, dataset: str, path: Path, *, device: str | torch.device = "cpu",
                  data_dir: str | Path | None = None, quiet: bool = False,
                  command: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Train the base of defense ``name`` through the defense; write its checkpoint and card
    (clean accuracy is the defense's: one random pass over the test split)."""
    if not check_defense(name).trained:
        raise ValueError(f"defense {name!r} wraps a shipped model and trains nothing; allowed: "
                         "noise, resize-pad")
    spec = base_spec(name, dataset)
    data = load_dataset(dataset, data_dir)
    torch.manual_seed(spec.train.seed)
    base = build_model(spec.model)
    defense = wrap(name, base, check_defense(name).settings(dataset))
    stats = train_model(defense, spec, data.x_train, data.y_train, device=device, quiet=quiet)
    torch.manual_seed(spec.train.seed)
    card = {
        "model": name, "dataset": dataset, "defense": defense_record(name, dataset),
        "seed": spec.train.seed,
        "clean_test_accuracy": accuracy(defense, data.x_test, data.y_test),
        "test_examples": len(data.x_test),
        "train_seconds": round(stats.pop("train_seconds"), 2), "train_stats": stats,
        "device": str(device), "torch_version": torch.__version__,
        "robbench_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command, "training_revision": TRAINING_REVISION,
    }
    save_checkpoint(base, spec, path, card)
    return base.eval(), {**read_card(path), "path": str(path)}


def load_trained_base(name: str, dataset: str, *, device: str | torch.device = "cpu",
                      data_dir: str | Path | None = None, quiet: bool = True
                      ) -> tuple[nn.Module, dict[str, Any]]:
    """The shipped base of defense ``name``, else a cached one, else trained now and cached."""
    for path in (shipped_defense_path(name, dataset), cached_defense_path(name, dataset)):
        if _matches(path, name, dataset):
            base, card = load_checkpoint(path, device)
            return base, {**card, "path": str(path)}
    return train_defense(name, dataset, cached_defense_path(name, dataset), device=device,
                         data_dir=data_dir, quiet=quiet)
