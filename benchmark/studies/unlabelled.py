"""Claim 2: does unlabelled data help? Train on N labels with M images for the generative stage.

For each N, a ConvNet trained on the same N labels is the baseline. Classification stages run
on the N labelled images and the generative stage on M images; every stage of every model takes
the optimiser steps of its full-data default times ``budget``, so models differ only in the data
they see, not in how long they train.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from robbench.atomic_write import atomic_write_text
from robbench.attacks.registry import craft
from robbench.data.datasets import load_dataset
from robbench.models.registry import (
    default_spec,
    load_zoo_model,
    override_spec,
    typed_overrides,
)
from robbench.models.shortrun import generator_samples
from robbench.models.training import balanced_labels, check_label_budget, subset_sizes
from robbench.records.scoring import accuracy_with_interval
from robbench.report.figures import plot_samples
from robbench.runs.detection import as_target
from robbench.studies.synthesis import convnet_features, frechet_distance


def scaled_spec(model: str, dataset: str, labels: int, unlabelled: int | None, train_size: int,
                budget: float = 1.0, classes: int = 10, base: dict[str, Any] | None = None,
                **overrides: Any):
    """The default spec (with the ``base`` changes) on ``labels`` labelled images and
    ``unlabelled`` generative images.

    Each stage's epochs are rescaled so that it takes ``budget`` times the optimiser steps the
    recipe takes on the full ``train_size`` images; ``overrides`` then apply as given.
    """
    default = override_spec(default_spec(model, dataset), **typed_overrides(base or {}))
    spec = override_spec(default, labels=labels,
                         unlabelled=unlabelled if model == "shortrun" else None)
    t = spec.train
    n_labelled, pool = subset_sizes(t, train_size, classes)
    steps_per_epoch = math.ceil(train_size / t.batch_size)

    def epochs_on(default_epochs: float, size: int) -> float:
        return budget * default_epochs * steps_per_epoch / math.ceil(size / t.batch_size)

    if model == "convnet":
        epochs = {"epochs": epochs_on(t.epochs, n_labelled)}
    else:
        epochs = {"generative_epochs": epochs_on(t.generative_epochs, pool),
                  "discriminative_epochs": epochs_on(t.discriminative_epochs, n_labelled),
                  "bptt_epochs": epochs_on(t.bptt_epochs, n_labelled)}
    return override_spec(spec, **{**epochs, **overrides})


def unlabelled_study(
    dataset: str,
    labels: Sequence[int],
    unlabelled: Sequence[int | str | None],
    *,
    budget: float = 1.0,
    n_eval: int | None = None,
    eps: float = 0.1,
    draws: int = 10,
    seed: int = 0,
    train_seeds: Sequence[int] = (0,),
    data_dir: str | None = None,
    device: str = "cpu",
    quiet: bool = False,
    base: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    grid_dir: str | Path | None = None,
) -> pd.DataFrame:
    """One row per model: clean and PGD robust accuracy, and the samples' Fréchet distance.

    ``unlabelled`` sizes are image counts, ``None`` for the whole training set, or ``"labels"``
    for M = N. Each of ``train_seeds`` trains every model again, with its own labelled subset
    (shared by the models of that seed) and initial weights; with more than one, rows carry a
    ``seed`` column (see ``seed_summary``). ``seed`` seeds the evaluation. ``base`` changes
    the registered recipe before its epochs are scaled (``{"bptt_epochs": 3}`` keeps a study
    on an earlier recipe); ``overrides`` replace settings of the scaled spec. With ``grid_dir``,
    the samples of each Short Run generator of the first training seed are drawn there.
    """
    base = typed_overrides(base or {})  # a bad setting fails before any training
    data = load_dataset(dataset, data_dir)
    for n_labels in labels:
        check_label_budget(n_labels, data.y_train)
    drawn = {n_labels: balanced_labels(n_labels, data.classes) for n_labels in labels}
    for m in unlabelled:
        if isinstance(m, int) and m < min(drawn.values()):
            raise ValueError(f"unlabelled {m} is below every label budget ({min(drawn.values())} "
                             "labelled images and up); M counts the labelled images too, so "
                             "M >= N ('labels' for M = N)")
    n = len(data.x_test) if n_eval is None else min(n_eval, len(data.x_test))
    x, y = data.x_test[:n].to(device), data.y_test[:n].to(device)
    features, _ = load_zoo_model("convnet", dataset, device=device, quiet=True,
                                 data_dir=data_dir)
    test_features = convnet_features(features, data.x_test)
    rows = []
    for n_labels in labels:
        sizes = [n_labels if m == "labels" else m for m in unlabelled]
        runs = [("convnet", None)] + [("shortrun", m) for m in dict.fromkeys(sizes)]
        for train_seed, (name, m) in itertools.product(train_seeds, runs):
            if m is not None and m < drawn[n_labels]:
                continue
            spec = scaled_spec(name, dataset, n_labels, m, len(data.x_train), budget,
                               data.classes, base, **{"seed": train_seed, **(overrides or {})})
            model, card = load_zoo_model(name, dataset, spec=spec, device=device, quiet=quiet,
                                         data_dir=data_dir)
            clean, robust = clean_and_robust(name, model, x, y, eps, draws, seed, device)
            fd = None
            n_labelled, size = subset_sizes(spec.train, len(data.x_train), data.classes)
            if name == "shortrun":
                samples = generator_samples(model, len(data.x_test), seed)
                fd = frechet_distance(convnet_features(features, samples), test_features)
                if grid_dir is not None and train_seed == train_seeds[0]:
                    Path(grid_dir).mkdir(parents=True, exist_ok=True)
                    plot_samples(model, Path(grid_dir), seed=seed,
                                 name=f"samples-N{n_labelled}-M{size}",
                                 caption=f"{dataset}: N = {n_labelled} labels, M = {size} "
                                         "images for the generative stage")
            seed_column = {"seed": train_seed} if len(train_seeds) > 1 else {}
            rows.append({"model": name, "labels": n_labelled, **seed_column,
                         "unlabelled": "-" if name == "convnet" else size,
                         "clean": clean[0], "clean_ci": f"[{clean[1]:.3f}, {clean[2]:.3f}]",
                         f"pgd_{eps:g}": robust[0], "pgd_ci": f"[{robust[1]:.3f}, {robust[2]:.3f}]",
                         "frechet_distance": fd, "train_seconds": card["train_seconds"],
                         "sha256": card["sha256"][:12]})
    return pd.DataFrame(rows)


def clean_and_robust(name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                     eps: float, draws: int, seed: int, device: str):
    """Clean and PGD-40 (robbench's) accuracy with intervals, R passes for a random model."""
    target = as_target(name, model, x)
    passes = draws if target.stochastic else 1
    torch.manual_seed(seed)
    clean = accuracy_with_interval(model, x, y, passes, device=device)
    x_adv = craft("pgd", target, x, y, [eps])[eps]
    return clean, accuracy_with_interval(model, x_adv, y, passes, device=device)


def seed_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over training seeds of each model's accuracies and distance:
    how much of a difference between rows one seed's noise could make."""
    keys = ["model", "labels", "unlabelled"]
    metrics = _metrics(frame)
    grouped = frame.groupby(keys, sort=False)
    summary = grouped.size().rename("seeds").reset_index()
    for metric in metrics:
        mean, sd = grouped[metric].mean().to_numpy(), grouped[metric].std().to_numpy()
        summary[metric] = [f"{m:.3f} ± {s:.3f}" if m == m else "-" for m, s in zip(mean, sd,
                                                                                  strict=True)]
    return summary


def _metrics(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c in ("clean", "frechet_distance")
            or c.startswith("pgd_") and c != "pgd_ci"]


def paired_differences(frame: pd.DataFrame) -> pd.DataFrame:
    """Each Short Run row minus the Short Run row of the same labels and seed with the fewest
    generative images: mean ± sd over seeds, and in how many seeds it was higher. Pairing by
    seed (same labelled subset and initial weights) removes most of the seed-to-seed spread."""
    shortrun = frame[frame.model == "shortrun"]
    rows = []
    for labels, group in shortrun.groupby("labels", sort=False):
        sizes = list(dict.fromkeys(group.unlabelled))
        base = group[group.unlabelled == sizes[0]].set_index("seed")
        for size in sizes[1:]:
            other = group[group.unlabelled == size].set_index("seed")
            row = {"labels": labels, "unlabelled": size, "versus": sizes[0], "seeds": len(other)}
            for metric in _metrics(frame):
                d = (other[metric] - base[metric]).dropna()
                row[metric] = f"{d.mean():+.3f} ± {d.std():.3f} ({(d > 0).sum()}/{len(d)} higher)"
            rows.append(row)
    return pd.DataFrame(rows)


def write_study(frame: pd.DataFrame, out_dir: str | Path, command: str) -> Path:
    """unlabelled.csv (one row per model) and unlabelled.md, led by the mean ± sd over training
    seeds when there are several."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "unlabelled.csv", frame.to_csv(index=False))
    text = f"`{command}`\n\n"
    if "seed" in frame.columns:
        text += ("Mean ± standard deviation over the training seeds:\n\n"
                 + seed_summary(frame).to_markdown(index=False) + "\n\n")
        paired = paired_differences(frame)
        if len(paired):
            text += ("Paired by seed: each Short Run row minus the one with the fewest "
                     "generative images (`versus`) on the same labels:\n\n"
                     + paired.to_markdown(index=False) + "\n\n")
        text += "Each seed:\n\n"
    text += frame.to_markdown(index=False, floatfmt=".3f") + "\n"
    atomic_write_text(out_dir / "unlabelled.md", text)
    return out_dir / "unlabelled.md"
