"""Learning curves of robbench trainings: accuracy against labelled epochs, from a model card's
``epoch_history`` or, while a training is paused between pieces, from its resume state.

A labelled epoch is a pass of a stage that sees labels (the discriminative stage, BPTT, the
joint objective); the curve counts them in order, so a recipe's last BPTT epoch is its last
point. ``monitor_accuracy`` (``robbench train --monitor N``: one chain on the first N test
images) is the held-out curve; the training accuracy of each pass is kept beside it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from robbench.atomic_write import atomic_write_text
from robbench.models.checkpoint_io import card_path
from robbench.models.training_state import STATE_FILE, StateStore, resume_dir
from robbench.report.figure_style import model_color, plt, save_figure

CURVE_COLUMNS = ["model", "labelled_epoch", "stage", "epoch", "loss", "train_accuracy",
                 "monitor_accuracy", "seconds", "finished"]


def training_history(path: str | Path) -> tuple[list[dict[str, Any]], bool]:
    """(one row per finished pass, whether the training finished) of the training ``path``
    names: a card (``X.json``), its checkpoint (``X.safetensors``) or a resume state
    (``X.resume/``). A checkpoint whose training is paused is read from its resume state."""
    path = Path(path)
    state = path if (path / STATE_FILE).is_file() else resume_dir(path)
    if (state / STATE_FILE).is_file():
        progress = StateStore(state).progress()
        return progress.history, progress.finished
    card = path if path.suffix == ".json" else card_path(path)
    if not card.is_file():
        raise FileNotFoundError(f"{path} is neither a model card, a checkpoint with its card, "
                                "nor a training's resume state")
    history = json.loads(card.read_text()).get("epoch_history")
    if not history:
        raise ValueError(f"card {card} records no epoch_history (trained before robbench "
                         "kept one)")
    return history, True


def curve_name(path: str | Path) -> str:
    """The name a training is shown by: its checkpoint's stem."""
    path = Path(path)
    return path.name.removesuffix(".resume") if path.is_dir() else path.stem


def learning_curves(histories: Mapping[str, tuple[Sequence[dict], bool]]) -> pd.DataFrame:
    """One row per labelled pass of each training, numbered in order (CURVE_COLUMNS)."""
    rows = []
    for name, (history, finished) in histories.items():
        labelled = [h for h in history if h.get("train_accuracy") is not None]
        for k, h in enumerate(labelled, start=1):
            rows.append({"model": name, "labelled_epoch": k, "stage": h["stage"],
                         "epoch": h["epoch"], "loss": h["loss"],
                         "train_accuracy": h["train_accuracy"],
                         "monitor_accuracy": h.get("monitor_accuracy"),
                         "seconds": h["seconds"], "finished": finished})
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def curve_summary(frame: pd.DataFrame) -> str:
    """One generated paragraph per training: its passes and hours, where its held-out accuracy
    peaked, and how the held-out and the training accuracy moved over the second half of its
    labelled epochs (a flat held-out line beside a rising training line is a plateau)."""
    lines = []
    for name, rows in frame.groupby("model", sort=False):
        hours = rows.seconds.sum() / 3600
        text = (f"**{name}**: {len(rows)} labelled passes, {hours:.1f} hours of training "
                f"(the labelled passes' seconds).")
        held = rows.dropna(subset=["monitor_accuracy"])
        if len(held):
            best = held.loc[held.monitor_accuracy.idxmax()]
            half = rows[rows.labelled_epoch > rows.labelled_epoch.max() / 2]
            late = half.dropna(subset=["monitor_accuracy"])
            text += (f" Held-out accuracy: best {best.monitor_accuracy:.1%} at labelled epoch "
                     f"{int(best.labelled_epoch)}, last {held.monitor_accuracy.iloc[-1]:.1%}.")
            if len(late) > 1:
                rise = half.train_accuracy.iloc[-1] - half.train_accuracy.iloc[0]
                text += (f" Over labelled epochs {int(half.labelled_epoch.min())}-"
                         f"{int(half.labelled_epoch.max())} it ranged from "
                         f"{late.monitor_accuracy.min():.1%} to {late.monitor_accuracy.max():.1%}"
                         f" while training accuracy changed by {100 * rise:+.1f} points.")
        lines.append(text)
    return "\n\n".join(lines) + "\n"


def plot_learning_curves(frame: pd.DataFrame, out_dir: Path, target: float | None = None
                         ) -> list[Path]:
    """learning_curve.png/.svg: held-out accuracy (solid; training accuracy dotted where no
    held-out point exists) against labelled epochs, one colour per training."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, rows in frame.groupby("model", sort=False):
        color = model_color(name)
        held_out = rows.dropna(subset=["monitor_accuracy"])
        ax.plot(rows.labelled_epoch, rows.train_accuracy, ":", color=color, alpha=0.7,
                label=f"{name}, training passes")
        if len(held_out):
            ax.plot(held_out.labelled_epoch, held_out.monitor_accuracy, "o-", color=color,
                    label=f"{name}, held-out")
    if target is not None:
        ax.axhline(target, color="0.4", lw=0.8, ls="--", label=f"target {target:.1%}")
    ax.set_xlabel("labelled epoch (discriminative, then BPTT)")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, out_dir, "learning_curve")


def write_learning_curves(paths: Sequence[str | Path], out_dir: str | Path, *,
                          target: float | None = None, command: str | None = None) -> list[Path]:
    """learning_curve.md, .csv and the figure for the trainings ``paths`` name, in OUT."""
    histories = {curve_name(p): training_history(p) for p in paths}
    frame = learning_curves(histories)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "learning_curve.csv", frame.to_csv(index=False))
    paused = [name for name, (_, finished) in histories.items() if not finished]
    lead = f"`{command}`\n\n" if command else ""
    note = (f"Unfinished, read from the resume state: {', '.join(paused)}.\n\n"
            if paused else "")
    atomic_write_text(out / "learning_curve.md", lead + note + frame.to_markdown(
        index=False, floatfmt=".4g") + "\n\n" + curve_summary(frame))
    return [out / "learning_curve.md", out / "learning_curve.csv",
            *plot_learning_curves(frame, out, target)]
