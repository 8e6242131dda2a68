"""Figures of one or more runs (matplotlib, Agg, PNG and SVG): ``robbench plot``.

* ``accuracy_vs_eps``: robust accuracy against eps per model and attack, 95% Wilson bands;
* ``adversarial_examples``: clean image, adversarial image and perturbation per model, each
  titled with both models' predictions;
* ``samples``: images g(z), z ~ N(0, I), synthesised by the Short Run generator;
* ``langevin_trajectory``: g(z_k) for k = 0..K of the Short Run chain for a few test images.

Colours are fixed per model (``MODEL_COLORS``), markers/line styles per attack.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

MODEL_COLORS = {"convnet": "#1f77b4", "shortrun": "#d62728"}
MODEL_LABELS = {"convnet": "ConvNet", "shortrun": "Short Run"}
_FALLBACK_COLORS = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
_STYLES = ["-", "--", "-.", ":"]


def model_color(model: str) -> str:
    """The fixed colour of a model in every figure."""
    if model in MODEL_COLORS:
        return MODEL_COLORS[model]
    return _FALLBACK_COLORS[sum(map(ord, model)) % len(_FALLBACK_COLORS)]


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def _save(fig: plt.Figure, out_dir: Path, name: str) -> list[Path]:
    paths = []
    for ext in ("png", "svg"):
        path = out_dir / f"{name}.{ext}"
        # SVG text stays text; no date and fixed element ids, so a redrawn figure diffs clean
        with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "robbench"}):
            fig.savefig(path, dpi=130, bbox_inches="tight",
                        metadata={"Date": None} if ext == "svg" else None)
        paths.append(path)
    plt.close(fig)
    return paths


def _image(x: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] to something imshow takes."""
    return x[0] if x.shape[0] == 1 else np.transpose(x, (1, 2, 0))


def plot_accuracy_vs_eps(summary: pd.DataFrame, out_dir: str | Path,
                         worst: pd.DataFrame | None = None) -> list[Path]:
    """Robust accuracy against eps, one panel per (dataset, norm), Wilson bands and error bars.

    Each attack's line starts at eps = 0 with the model's clean accuracy. ``worst`` (from
    :func:`robbench.tables.worst_case_frame`) adds the per-example worst case over every attack
    as a thick line.
    """
    from robbench.tables import every_attack_rows

    out_dir = Path(out_dir)
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
                            marker=_MARKERS[j % len(_MARKERS)],
                            linestyle=_STYLES[j % len(_STYLES)], capsize=3, markersize=5,
                            linewidth=1.2, label=f"{model_label(model)} - {attack}")
            if worst is not None and not worst.empty:
                w = worst[(worst["dataset"] == dataset) & (worst["norm"] == norm)
                          & (worst["model"] == model)].sort_values("eps")
                if len(attacks) > 1 and not w.empty:
                    start = clean["accuracy"].head(1).tolist()
                    ax.plot([0.0] * len(start) + w["eps"].tolist(),
                            start + w["accuracy"].tolist(), color=color, linewidth=4,
                            alpha=0.85, solid_capstyle="round",
                            label=f"{model_label(model)} - worst case", zorder=5)
        ax.set_title(f"Robust accuracy vs eps ({dataset}, {norm.replace('inf', '-inf')})")
        ax.set_xlabel(f"eps ({norm.replace('linf', 'L-inf').replace('l2', 'L2')} budget, "
                      "pixels in [0, 1])")
        ax.set_ylabel("robust accuracy (95% Wilson interval)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return _save(fig, out_dir, "accuracy_vs_eps")


def _majority(preds: torch.Tensor) -> np.ndarray:
    """Most frequent label over draws, per example: (R, N) -> (N,)."""
    return torch.mode(preds, dim=0).values.numpy()


def plot_adversarial_grid(run_dir: str | Path, out_dir: str | Path, models: dict,
                          clean_x: np.ndarray, labels: np.ndarray, rows: int = 6,
                          draws: int = 10) -> list[Path]:
    """Clean / adversarial / perturbation per attacked model, titled with both models' labels.

    Uses the adversarial images each attacked cell keeps (``adv_x``) for the first attack of the
    run at its largest eps. ``models`` maps model name to a loaded model (its predictions on every
    shown image are computed here; a stochastic model shows its majority over ``draws`` passes).
    """
    from robbench.evaluation import predict_draws
    from robbench.run_grid import load_outcomes, read_cells

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    records = [r for r in read_cells(run_dir) if r["attack"] != "none"]
    if not records:
        raise ValueError(f"run {run_dir} has no attacked cell to show")
    attack = json.loads((run_dir / "config.json").read_text())["config"]["attacks"][0]
    records = [r for r in records if r["attack"] == attack] or records
    attack = records[0]["attack"]
    eps = max(r["eps"] for r in records)
    attacked = sorted({r["model"] for r in records if r["eps"] == eps})
    adv, idx = {}, None
    for model in attacked:
        out = load_outcomes(run_dir, f"{model}__{attack}__{eps:g}")
        if "adv_x" not in out:
            raise ValueError(f"run {run_dir} predates stored adversarial images; rerun it")
        adv[model] = out["adv_x"].astype(np.float32)
        idx = out["adv_index"] if idx is None else idx
    idx = idx[:rows]

    # every shown image, predicted by every model in one batched pass
    shown = np.concatenate([clean_x[idx]] + [adv[m][: len(idx)] for m in attacked])
    xt = torch.from_numpy(shown.astype(np.float32))
    votes = {}
    for m, net in models.items():
        torch.manual_seed(0)
        votes[m] = _majority(predict_draws(net, xt, draws))

    def predict(k: int) -> str:
        return ", ".join(f"{_abbr(m)} {int(v[k])}" for m, v in votes.items())

    cols = 1 + 2 * len(attacked)
    fig, axes = plt.subplots(len(idx), cols, figsize=(1.9 * cols, 2.0 * len(idx)),
                             squeeze=False)
    for r, i in enumerate(idx.tolist()):
        x = clean_x[i]
        axes[r, 0].imshow(_image(x), cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title(f"clean, y={int(labels[i])}\n{predict(r)}", fontsize=8)
        for m, model in enumerate(attacked):
            xa = adv[model][r]
            ax_a, ax_d = axes[r, 1 + 2 * m], axes[r, 2 + 2 * m]
            ax_a.imshow(_image(xa), cmap="gray", vmin=0, vmax=1)
            ax_a.set_title(f"adv. vs {model_label(model)}\n{predict((m + 1) * len(idx) + r)}",
                           fontsize=8,
                           color=model_color(model))
            ax_d.imshow(_image(xa - x).mean(-1) if x.shape[0] == 3 else _image(xa - x),
                        cmap="RdBu_r", vmin=-eps, vmax=eps)
            ax_d.set_title(f"perturbation\n(eps={eps:g})", fontsize=8, color=model_color(model))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Adversarial examples: {attack}, eps={eps:g} (predictions: "
                 + ", ".join(f"{_abbr(m)} = {model_label(m)}" for m in models) + ")",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, out_dir, "adversarial_examples")


def _abbr(model: str) -> str:
    return {"convnet": "CN", "shortrun": "SR"}.get(model, model[:3])


def _mosaic(images: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """Tile (rows * cols, C, H, W) images in [0, 1] into one picture with white gaps."""
    _, c, h, w = images.shape
    out = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.float32)
    for k, img in enumerate(images[: rows * cols]):
        r, q = divmod(k, cols)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        out[top : top + h, left : left + w] = np.transpose(img, (1, 2, 0))
    return out[..., 0] if c == 1 else out


def plot_samples(model: torch.nn.Module, out_dir: str | Path, n: int = 64,
                 seed: int = 0, name: str = "samples", caption: str = "") -> list[Path]:
    """An image grid of g(z), z ~ N(0, I), synthesised by the Short Run generator.

    ``caption`` is a second title line naming the generator (e.g. its training data).
    """
    from robbench.synthesis import generator_samples

    x = generator_samples(model, n, seed).cpu().numpy()
    side = int(np.ceil(np.sqrt(n)))
    fig, ax = plt.subplots(figsize=(6, 6.3))
    ax.imshow(_mosaic(x, side, side), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    title = f"Short Run generator samples g(z), z ~ N(0, I) (n={n}, seed {seed})"
    ax.set_title(f"{title}\n{caption}" if caption else title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out_dir, name)


def plot_trajectory(model: torch.nn.Module, x: torch.Tensor, out_dir: str | Path,
                    seed: int = 0) -> list[Path]:
    """Rows: test images; columns: the image, then g(z_k) for k = 0..K of one Langevin chain."""
    torch.manual_seed(seed)
    trajectory: list[torch.Tensor] = []
    model.eval()
    model.infer(x.to(next(model.parameters()).device), trajectory=trajectory,
                differentiable=False)
    with torch.no_grad():
        frames = [model.generator(z.detach()).cpu().numpy() for z in trajectory]
    steps = len(frames) - 1
    cols = steps + 2
    tiles = np.stack([x.cpu().numpy()] + frames, axis=1)  # (N, cols, C, H, W)
    n, _, c, h, w = tiles.shape
    fig, ax = plt.subplots(figsize=(0.5 * cols + 0.6, 0.55 * n + 1.0))
    ax.imshow(_mosaic(tiles.reshape(n * cols, c, h, w), n, cols), cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    centres = [1 + q * (w + 1) + (w - 1) / 2 for q in range(cols)]
    ax.set_xticks(centres, ["x"] + [str(k) for k in range(steps + 1)], fontsize=7)
    ax.set_yticks([1 + r * (h + 1) + (h - 1) / 2 for r in range(n)],
                  [f"test {r}" for r in range(n)], fontsize=7)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel("Langevin step k (first column: the test image x)")
    ax.set_title(f"Langevin trajectory: g(z_k), k = 0..{steps}, one chain per test image",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, out_dir, "langevin_trajectory")


def make_plots(run_dirs: Sequence[str | Path], out_dir: str | Path, *,
               data_dir: str | None = None, quiet: bool = True) -> list[Path]:
    """All four figures for ``run_dirs`` into ``out_dir``; returns the written files.

    The accuracy figure merges every run; the example, sample and trajectory figures use the
    first run's dataset and models (loaded through the registry, as the run did).
    """
    from robbench.datasets import load_dataset
    from robbench.models.registry import load_model
    from robbench.run_grid import read_summary
    from robbench.tables import worst_case_frame

    if not run_dirs:
        raise ValueError("no runs given")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = pd.concat([read_summary(Path(r)) for r in run_dirs], ignore_index=True)
    written = plot_accuracy_vs_eps(summary, out_dir, worst_case_frame(run_dirs))

    first = Path(run_dirs[0])
    meta = json.loads((first / "config.json").read_text())
    dataset, names = meta["config"]["dataset"], meta["config"]["models"]
    models = {}
    for name in names:
        models[name], card = load_model(name, dataset, quiet=quiet, data_dir=data_dir)
        pinned = meta.get("checkpoints", {}).get(name, {}).get("sha256")
        if pinned and card.get("sha256") != pinned:
            print(f"robbench: warning: {name} checkpoint differs from the one run {first.name} "
                  "used; predictions in the figures may differ")
    data = load_dataset(dataset, data_dir)
    written += plot_adversarial_grid(first, out_dir, models, data.x_test.numpy(),
                                     data.y_test.numpy())
    generative = [m for m in models.values() if hasattr(m, "sample")]
    if generative:
        written += plot_samples(generative[0], out_dir)
        written += plot_trajectory(generative[0], data.x_test[:4], out_dir)
    return written


def plot_reconstructions(model: torch.nn.Module, x: torch.Tensor, out_dir: str | Path,
                         seed: int = 0) -> list[Path]:
    """Test images (top rows) above their reconstructions g(z_K(x)) (bottom rows)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        recon = model.reconstruct(x.to(next(model.parameters()).device)).cpu().numpy()
    cols = min(len(x), 16)
    rows = int(np.ceil(len(x) / cols))
    fig, axes = plt.subplots(2, 1, figsize=(cols * 0.5 + 1, rows * 1.1 + 1.2))
    for ax, images, title in ((axes[0], x.cpu().numpy(), "test images x"),
                              (axes[1], recon, "reconstructions g(z_K(x)), one Langevin chain")):
        ax.imshow(_mosaic(images, rows, cols), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.axis("off")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, Path(out_dir), "reconstructions")
