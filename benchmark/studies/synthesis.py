"""Synthesis by the Short Run generator, and its Fréchet distance on ConvNet features.

The distance is FID's formula, |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)), computed on
the penultimate features (width d) of the trained ConvNet of the same dataset, not on
Inception features: it compares generators on one dataset, and is not comparable with FID.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy import linalg

from robbench.atomic_write import write_result_files
from robbench.data.datasets import load_dataset
from robbench.models.shortrun import generator_samples
from robbench.models.zoo import load_named_model
from robbench.report.figures import plot_reconstructions, plot_samples


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a and b (rows = samples)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = np.real(linalg.sqrtm(cov_a @ cov_b))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


@torch.no_grad()
def convnet_features(convnet: torch.nn.Module, x: torch.Tensor, batch: int = 1000) -> np.ndarray:
    convnet.eval()
    device = next(convnet.parameters()).device
    return torch.cat([convnet.embed(x[i : i + batch].to(device)).cpu()
                      for i in range(0, len(x), batch)]).double().numpy()


def synthesize(
    dataset: str,
    out_dir: str | Path,
    *,
    n: int = 64,
    seed: int = 0,
    data_dir: str | None = None,
    device: str = "cpu",
) -> dict:
    """Write sample and reconstruction grids and the Fréchet distances; return the record."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_dataset(dataset, data_dir)
    shortrun = load_named_model("shortrun", dataset, device=device, data_dir=data_dir)
    feature_net = load_named_model("convnet", dataset, device=device, data_dir=data_dir)
    model, card = shortrun.module, shortrun.card
    convnet, convnet_card = feature_net.module, feature_net.card
    files = plot_samples(model, out_dir, n=n, seed=seed)
    files += plot_reconstructions(model, data.x_test[:32], out_dir, seed=seed)
    m = len(data.x_test)
    samples = generator_samples(model, m, seed)
    with torch.no_grad():
        torch.manual_seed(seed)
        recon = torch.cat([model.reconstruct(data.x_test[i : i + 1000].to(device))
                           for i in range(0, m, 1000)])
    test = convnet_features(convnet, data.x_test)
    record = {
        "dataset": dataset,
        "shortrun_sha256": card["sha256"],
        "feature_convnet_sha256": convnet_card["sha256"],
        "features": f"ConvNet penultimate layer (d = {test.shape[1]}), not Inception",
        "n": m,
        "seed": seed,
        "fd_samples_vs_test": frechet_distance(convnet_features(convnet, samples), test),
        "fd_reconstructions_vs_test": frechet_distance(convnet_features(convnet, recon), test),
        "fd_train_vs_test": frechet_distance(convnet_features(convnet, data.x_train[:m]), test),
        "files": [p.name for p in files] + ["synthesis.md"],
    }
    write_result_files(out_dir, "synthesis", record, synthesis_markdown(record))
    return record


def synthesis_markdown(record: dict) -> str:
    """The Fréchet distances as a Markdown table (quoted in the README)."""
    rows = [("generator samples g(z), z ~ N(0, I)", record["fd_samples_vs_test"]),
            ("reconstructions g(z_K(x)) of the test images", record["fd_reconstructions_vs_test"]),
            ("real training images (reference)", record["fd_train_vs_test"])]
    lines = [f"Fréchet distance to the {record['n']} {record['dataset']} test images on "
             f"{record['features']}; lower is closer.", "",
             "| images | Fréchet distance |", "| --- | ---: |"]
    lines += [f"| {name} | {value:.2f} |" for name, value in rows]
    return "\n".join(lines) + "\n"
