"""What every robbench figure shares: fixed colours per model, markers per attack, and how
figures are written (PNG and SVG, reproducible bytes)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MODEL_COLORS = {"convnet": "#1f77b4", "shortrun": "#d62728"}
MODEL_LABELS = {"convnet": "ConvNet", "shortrun": "Short Run"}
_FALLBACK_COLORS = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
STYLES = ["-", "--", "-.", ":"]


def model_color(model: str) -> str:
    """The fixed colour of a model in every figure."""
    if model in MODEL_COLORS:
        return MODEL_COLORS[model]
    return _FALLBACK_COLORS[sum(map(ord, model)) % len(_FALLBACK_COLORS)]


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def save_figure(fig: plt.Figure, out_dir: Path, name: str) -> list[Path]:
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


def image_of(x: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] to something imshow takes."""
    return x[0] if x.shape[0] == 1 else np.transpose(x, (1, 2, 0))




def mosaic(images: np.ndarray, rows: int, cols: int, pad: int = 1) -> np.ndarray:
    """Tile (rows * cols, C, H, W) images in [0, 1] into one picture with white gaps."""
    _, c, h, w = images.shape
    out = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.float32)
    for k, img in enumerate(images[: rows * cols]):
        r, q = divmod(k, cols)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        out[top : top + h, left : left + w] = np.transpose(img, (1, 2, 0))
    return out[..., 0] if c == 1 else out
