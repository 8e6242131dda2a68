"""The accuracy-matched control, ``convnet-matched``: the dataset's ConvNet recipe cut to fewer
optimiser steps, as few as reach the Short Run classifier's clean test accuracy.

Where the Short Run classifier is less accurate than the ConvNet, a reader may ask whether its
robustness is only its lower accuracy. This model answers in the same table: same architecture,
same recipe (its learning-rate schedule over the shorter run), stopped where it is as accurate
as the Short Run classifier. The number of steps is found by measurement (a doubling search,
then bisection; each candidate trained from scratch, the steps assumed to raise accuracy), and
the card records the target, every candidate tried and the command that repeats the search.
The stopping point is chosen on the test split because matching the accuracy on the images
the headline evaluates is the point of the control; the card says so.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robbench.data.datasets import Dataset, load_dataset
from robbench.models.build import build_model
from robbench.models.checkpoint_io import load_checkpoint, read_card
from robbench.models.config import ModelSpec
from robbench.models.registry import (
    SHIPPED_DIR,
    cache_dir,
    default_spec,
    load_zoo_model,
    override_spec,
    train_and_save,
)
from robbench.models.training import accuracy, subset_sizes
from robbench.models.training_loop import train_model

MATCHED = "convnet-matched"
MATCHED_DATASETS = ("mnist", "fashion-mnist")
"""Datasets whose headline includes the control (on digits the two models are matched already)."""
FIRST_STEPS = 8
STOPPED_ON = "clean accuracy on the whole test split, as the Short Run classifier's card has it"


def steps_per_epoch(spec: ModelSpec, train_size: int) -> int:
    """Optimiser steps in one epoch of ``spec``'s labelled training set."""
    labelled, _ = subset_sizes(spec.train, train_size, spec.model.classes)
    return math.ceil(labelled / spec.train.batch_size)


def matched_spec(dataset: str, steps: int, train_size: int) -> ModelSpec:
    """The ConvNet recipe of ``dataset`` cut to ``steps`` optimiser steps."""
    spec = default_spec("convnet", dataset)
    return override_spec(spec, epochs=steps / steps_per_epoch(spec, train_size))


def full_recipe_steps(dataset: str, train_size: int) -> int:
    spec = default_spec("convnet", dataset)
    return round(spec.train.epochs * steps_per_epoch(spec, train_size))


def steps_accuracy(dataset: str, steps: int, data: Dataset, device: str | torch.device
                   ) -> float:
    """Clean test accuracy of the ConvNet recipe cut to ``steps`` steps, trained from scratch."""
    spec = matched_spec(dataset, steps, len(data.x_train))
    torch.manual_seed(spec.train.seed)
    model = build_model(spec.model)
    train_model(model, spec, data.x_train, data.y_train, device=device, quiet=True)
    return accuracy(model, data.x_test, data.y_test)


def search_steps(dataset: str, target: float, data: Dataset, *,
                 device: str | torch.device = "cpu") -> tuple[int, dict[int, float]]:
    """The fewest steps whose ConvNet reaches ``target`` clean test accuracy, and every
    candidate tried ({steps: accuracy}); a ValueError if the full recipe stays below it."""
    full = full_recipe_steps(dataset, len(data.x_train))
    tried: dict[int, float] = {}
    low, high = 0, min(FIRST_STEPS, full)
    while (acc := tried.setdefault(high, steps_accuracy(dataset, high, data, device))) < target:
        if high == full:
            raise ValueError(f"the {dataset} ConvNet's full recipe ({full} steps) reaches "
                             f"{acc:.4f}, below the target accuracy {target:.4f}")
        low, high = high, min(2 * high, full)
    while high - low > 1:
        mid = (low + high) // 2
        tried[mid] = steps_accuracy(dataset, mid, data, device)
        low, high = (low, mid) if tried[mid] >= target else (mid, high)
    return high, dict(sorted(tried.items()))


def shortrun_accuracy(dataset: str, *, device: str | torch.device = "cpu",
                      data_dir: str | Path | None = None, quiet: bool = True) -> float:
    """The zoo Short Run classifier's clean test accuracy, as its card records it."""
    _, card = load_zoo_model("shortrun", dataset, device=device, data_dir=data_dir, quiet=quiet)
    return float(card["clean_test_accuracy"])


def train_matched(dataset: str, path: str | Path, *, target: float | None = None,
                  device: str | torch.device = "cpu", data_dir: str | Path | None = None,
                  quiet: bool = False, command: str | None = None
                  ) -> tuple[nn.Module, dict[str, Any]]:
    """Search the steps that match ``target`` (default: the zoo Short Run classifier's clean
    accuracy), then train and write that ConvNet with the search on its card."""
    source = "the zoo Short Run classifier's card" if target is None else "given"
    if target is None:
        target = shortrun_accuracy(dataset, device=device, data_dir=data_dir, quiet=quiet)
    if not 0 < target <= 1:
        raise ValueError(f"target accuracy {target!r} must be in (0, 1]")
    data = load_dataset(dataset, data_dir)
    steps, tried = search_steps(dataset, target, data, device=device)
    spec = matched_spec(dataset, steps, len(data.x_train))
    record = {"target_accuracy": target, "target_from": source, "stopped_on": STOPPED_ON,
              "steps": steps, "full_recipe_steps": full_recipe_steps(dataset, len(data.x_train)),
              "search": {str(k): v for k, v in tried.items()}}
    model, card = train_and_save(spec, Path(path), data_dir=data_dir, device=device,
                                 quiet=quiet, command=command,
                                 card_extra={"model": MATCHED, "matched": record})
    return model, card


def shipped_matched_path(dataset: str) -> Path:
    return SHIPPED_DIR / f"{dataset}-{MATCHED}.safetensors"


def cached_matched_path(dataset: str, target: float) -> Path:
    blob = json.dumps([default_spec("convnet", dataset).to_dict(), target]).encode()
    return cache_dir() / f"{dataset}-{MATCHED}-{hashlib.sha256(blob).hexdigest()[:12]}.safetensors"


def load_matched(dataset: str, *, device: str | torch.device = "cpu",
                 data_dir: str | Path | None = None, quiet: bool = True
                 ) -> tuple[nn.Module, dict[str, Any]]:
    """The control matched to the zoo Short Run classifier of ``dataset``: shipped if it was
    matched to that classifier's accuracy, else cached, else searched and trained now."""
    target = shortrun_accuracy(dataset, device=device, data_dir=data_dir, quiet=quiet)
    path = shipped_matched_path(dataset)
    if not (path.is_file() and read_card(path).get("matched", {}).get("target_accuracy")
            == target):
        path = cached_matched_path(dataset, target)
        if not path.is_file():
            train_matched(dataset, path, target=target, device=device, data_dir=data_dir,
                          quiet=quiet)
    module, card = load_checkpoint(path, device)
    return module, {**card, "path": str(path)}
