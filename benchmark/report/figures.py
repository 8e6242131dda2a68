"""Image figures: adversarial examples, generator samples, Langevin trajectories and
reconstructions (the models are passed in; nothing is loaded here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robbench.attacks.target import Target
from robbench.models.shortrun import generator_samples
from robbench.records.scoring import predict_draws
from robbench.records.store import RunStore, open_run
from robbench.report.figure_style import (
    image_of,
    model_color,
    model_label,
    mosaic,
    plt,
    save_figure,
)


def _majority(preds: torch.Tensor) -> np.ndarray:
    """Most frequent label over draws, per example: (R, N) -> (N,)."""
    return torch.mode(preds, dim=0).values.numpy()


def plot_adversarial_grid(run: str | Path | RunStore, out_dir: str | Path,
                          targets: dict[str, Target], clean_x: np.ndarray, labels: np.ndarray,
                          rows: int = 6, draws: int = 10, device: str = "cpu") -> list[Path]:
    """Clean / adversarial / perturbation per attacked model, titled with every model's label.

    Uses the adversarial images each attacked cell keeps (``adv_x``) for the first attack of the
    run at its largest eps. Every shown image is classified here by every model of ``targets``
    (a random model shows its majority over ``draws`` passes).
    """
    store, out_dir = open_run(run), Path(out_dir)
    records = [r for r in store.records() if r["attack"] != "none" and not r.get("skipped")]
    if not records:
        raise ValueError(f"run {store.label} has no attacked cell to show")
    attack = store.read_meta()["config"]["attacks"][0]
    records = [r for r in records if r["attack"] == attack] or records
    attack = records[0]["attack"]
    eps = max(r["eps"] for r in records)
    attacked = sorted({r["model"] for r in records if r["eps"] == eps})
    adv, idx = {}, None
    for model in attacked:
        out = store.outcomes(f"{model}__{attack}__{eps:g}")
        if "adv_x" not in out:
            raise ValueError(f"run {store.label} predates stored adversarial images; rerun it")
        adv[model] = out["adv_x"].astype(np.float32)
        idx = out["adv_index"] if idx is None else idx
    idx = idx[:rows]

    # every shown image, predicted by every model in one batched pass
    shown = np.concatenate([clean_x[idx]] + [adv[m][: len(idx)] for m in attacked])
    xt = torch.from_numpy(shown.astype(np.float32))
    votes = {}
    for m, target in targets.items():
        torch.manual_seed(0)
        passes = draws if target.stochastic else 1
        votes[m] = _majority(predict_draws(target.model, xt, passes, len(xt), device))

    def predict(k: int) -> str:
        return ", ".join(f"{_abbr(m)} {int(v[k])}" for m, v in votes.items())

    cols = 1 + 2 * len(attacked)
    fig, axes = plt.subplots(len(idx), cols, figsize=(1.9 * cols, 2.0 * len(idx)),
                             squeeze=False)
    for r, i in enumerate(idx.tolist()):
        x = clean_x[i]
        axes[r, 0].imshow(image_of(x), cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title(f"clean, y={int(labels[i])}\n{predict(r)}", fontsize=8)
        for m, model in enumerate(attacked):
            xa = adv[model][r]
            ax_a, ax_d = axes[r, 1 + 2 * m], axes[r, 2 + 2 * m]
            ax_a.imshow(image_of(xa), cmap="gray", vmin=0, vmax=1)
            ax_a.set_title(f"adv. vs {model_label(model)}\n{predict((m + 1) * len(idx) + r)}",
                           fontsize=8,
                           color=model_color(model))
            ax_d.imshow(image_of(xa - x).mean(-1) if x.shape[0] == 3 else image_of(xa - x),
                        cmap="RdBu_r", vmin=-eps, vmax=eps)
            ax_d.set_title(f"perturbation\n(eps={eps:g})", fontsize=8, color=model_color(model))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Adversarial examples: {attack}, eps={eps:g} (predictions: "
                 + ", ".join(f"{_abbr(m)} = {model_label(m)}" for m in targets) + ")",
                 fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_dir, "adversarial_examples")


def plot_stored_adversarials(run: str | Path | RunStore, out_dir: str | Path,
                             attack: str, eps: float, columns: int = 8) -> list[Path]:
    """The adversarial images a run kept (``adv_x``) of ``attack`` at ``eps``, one row per
    model, each titled with its label and the prediction the run recorded for it (a random
    model: the majority of its R passes and how many were right).

    Nothing is recomputed: images and predictions are the run's own, so the figure needs no
    model and no dataset.
    """
    store = open_run(run)
    rows = []
    for rec in store.records():
        if rec["attack"] == attack and float(rec["eps"]) == eps and not rec.get("skipped"):
            out = store.outcomes(f"{rec['model']}__{attack}__{eps:g}")
            if "adv_x" in out:
                rows.append((rec["model"], out))
    if not rows:
        raise ValueError(f"run {store.label} keeps no adversarial images of {attack} at "
                         f"eps {eps:g}")
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.3 * columns, 1.9 * len(rows)),
                             squeeze=False)
    for r, (model, out) in enumerate(rows):
        keep = out["adv_index"][:columns]
        preds = torch.from_numpy(out["pred"][:, keep].astype(np.int64))
        majority, draws = _majority(preds), preds.shape[0]
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(keep):
                ax.axis("off")
                continue
            label = int(out["label"][keep[c]])
            right = int((preds[:, c] == label).sum())
            mark = "right" if majority[c] == label else "wrong"
            passes = f" {right}/{draws}" if draws > 1 else ""
            ax.imshow(image_of(out["adv_x"][c].astype(np.float32)), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"y={label}, pred {int(majority[c])}\n{mark}{passes}", fontsize=8,
                         fontweight="bold" if mark == "wrong" else "normal")
        axes[r, 0].set_ylabel(model_label(model), fontsize=9, color=model_color(model))
    fig.suptitle(f"{attack}, eps={eps:g}: the run's adversarial images, label y and recorded "
                 "prediction (bold: wrong; a random model: passes right of R)", fontsize=9)
    fig.tight_layout(h_pad=1.5)
    return save_figure(fig, Path(out_dir), "stored_adversarials")


def _abbr(model: str) -> str:
    return {"convnet": "CN", "shortrun": "SR"}.get(model, model[:3])


def plot_samples(model: torch.nn.Module, out_dir: str | Path, n: int = 64,
                 seed: int = 0, name: str = "samples", caption: str = "") -> list[Path]:
    """An image grid of g(z), z ~ N(0, I), synthesised by the Short Run generator.

    ``caption`` is a second title line naming the generator (e.g. its training data).
    """
    x = generator_samples(model, n, seed).cpu().numpy()
    side = int(np.ceil(np.sqrt(n)))
    fig, ax = plt.subplots(figsize=(6, 6.3))
    ax.imshow(mosaic(x, side, side), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    title = f"Short Run generator samples g(z), z ~ N(0, I) (n={n}, seed {seed})"
    ax.set_title(f"{title}\n{caption}" if caption else title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_dir, name)


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
    ax.imshow(mosaic(tiles.reshape(n * cols, c, h, w), n, cols), cmap="gray", vmin=0, vmax=1,
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
    return save_figure(fig, out_dir, "langevin_trajectory")




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
        ax.imshow(mosaic(images, rows, cols), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.axis("off")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, Path(out_dir), "reconstructions")
