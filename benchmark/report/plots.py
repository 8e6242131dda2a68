"""Figures of one or more runs: ``robbench plot``.

* ``accuracy_vs_eps``: robust accuracy against eps per model and attack, with 95% intervals,
  and the per-example worst case (every metric of a random model);
* ``adversarial_examples``, ``samples``, ``langevin_trajectory``: see
  ``robbench.report.figures`` (they need the models, which the caller loads).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch

from robbench.attacks.target import Target
from robbench.records.store import RunStore, open_runs
from robbench.report.figure_style import (
    MARKERS,
    STYLES,
    model_color,
    model_label,
    plt,
    save_figure,
)
from robbench.report.figures import plot_adversarial_grid, plot_samples, plot_trajectory
from robbench.report.worst_case import every_attack_rows, worst_case_frame


def plot_accuracy_vs_eps(summary: pd.DataFrame, out_dir: str | Path,
                         worst: pd.DataFrame | None = None) -> list[Path]:
    """Robust accuracy against eps, one panel per (dataset, norm), Wilson bands and error bars.

    Each attack's line starts at eps = 0 with the model's clean (expected) accuracy. ``worst``
    (from :func:`robbench.report.worst_case.worst_case_frame`) adds the per-example worst case
    over every attack as a thick line, and for a random model its all-draws worst case as a
    thick dotted one.
    """
    out_dir = Path(out_dir)
    summary = summary[summary["skipped"].fillna("").astype(str) == ""]
    attacked = summary[summary["attack"] != "none"]
    if attacked.empty:
        raise ValueError("no attacked cells to plot (the runs hold only clean accuracy)")
    panels = sorted(attacked.groupby(["dataset", "norm"]).groups)
    if worst is not None and not worst.empty:
        worst = every_attack_rows(worst)
    fig, axes = plt.subplots(1, len(panels), figsize=(8.4 * len(panels), 4.8), squeeze=False)
    attacks = sorted(attacked["attack"].unique())
    for ax, (dataset, norm) in zip(axes[0], panels, strict=True):
        part = summary[(summary["dataset"] == dataset)]
        for model in sorted(part["model"].unique()):
            color = model_color(model)
            clean = part[(part["model"] == model) & (part["attack"] == "none")]
            for j, attack in enumerate(attacks):
                rows = part[(part["model"] == model) & (part["attack"] == attack)
                            & (part["norm"] == norm)]
                if rows.empty:
                    continue
                rows = pd.concat([clean.head(1), rows]).sort_values("eps")
                rows = rows.groupby("eps", as_index=False).first()
                eps, acc = rows["eps"].to_numpy(float), rows["accuracy"].to_numpy(float)
                low, high = rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float)
                ax.fill_between(eps, low, high, color=color, alpha=0.12, linewidth=0)
                ax.errorbar(eps, acc, yerr=[acc - low, high - acc], color=color,
                            marker=MARKERS[j % len(MARKERS)],
                            linestyle=STYLES[j % len(STYLES)], capsize=3, markersize=5,
                            linewidth=1.2, label=f"{model_label(model)} - {attack}")
            if worst is not None and not worst.empty:
                w = worst[(worst["dataset"] == dataset) & (worst["norm"] == norm)
                          & (worst["model"] == model)].sort_values("eps")
                if len(attacks) > 1 and not w.empty:
                    metrics = [("accuracy", "-", "worst case")]
                    if w["stochastic"].astype(bool).any():
                        metrics.append(("all_draws", ":", "worst case, all-draws"))
                    for column, style, what in metrics:
                        start = clean[column].head(1).tolist()
                        ax.plot([0.0] * len(start) + w["eps"].tolist(),
                                start + w[column].tolist(), color=color, linewidth=4,
                                linestyle=style, alpha=0.85, solid_capstyle="round",
                                label=f"{model_label(model)} - {what}", zorder=5)
        ax.set_title(f"Robust accuracy vs eps ({dataset}, {norm.replace('inf', '-inf')})")
        ax.set_xlabel(f"eps ({norm.replace('linf', 'L-inf').replace('l2', 'L2')} budget, "
                      "pixels in [0, 1])")
        ax.set_ylabel("robust accuracy (95% interval)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return save_figure(fig, out_dir, "accuracy_vs_eps")



def make_plots(runs: Sequence[str | Path | RunStore], out_dir: str | Path, *,
               targets: Mapping[str, Target] | None = None,
               test_images: tuple[torch.Tensor, torch.Tensor] | None = None,
               device: str = "cpu") -> list[Path]:
    """The figures of ``runs`` into ``out_dir``; returns the written files.

    The accuracy figure merges every run. With ``targets`` (the first run's models) and
    ``test_images`` (its test images and labels), the example figures too: adversarial
    examples of the first run, and samples and a Langevin trajectory of a model that can
    synthesise (``sample`` and ``infer`` hooks).
    """
    stores = open_runs(runs)
    if not stores:
        raise ValueError("no runs given")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = pd.concat([s.summary() for s in stores], ignore_index=True)
    written = plot_accuracy_vs_eps(summary, out_dir, worst_case_frame(stores))
    if targets is None or test_images is None:
        return written
    x_test, y_test = test_images
    written += plot_adversarial_grid(stores[0], out_dir, targets, x_test.numpy(),
                                     y_test.numpy(), device=device)
    generative = [t.model for t in targets.values()
                  if hasattr(t.model, "sample") and hasattr(t.model, "infer")]
    if generative:
        written += plot_samples(generative[0], out_dir)
        written += plot_trajectory(generative[0], x_test[:4], out_dir)
    return written
