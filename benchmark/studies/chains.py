"""Clean accuracy of the Short Run classifier with several Langevin chains per input.

The thesis combines C independent chains by averaging their latents, averaging their logits or a
majority vote. Each input's C chains are run once and every combination mode reads the same
latents, so the modes differ only in how they combine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from robbench.atomic_write import atomic_write_text
from robbench.data.datasets import load_dataset
from robbench.models.config import COMBINE_MODES
from robbench.models.zoo import load_named_model
from robbench.records.scoring import predict_draws, wilson_interval


@torch.no_grad()
def chain_accuracy(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    chains: Sequence[int],
    combines: Sequence[str] = COMBINE_MODES,
    *,
    batch_size: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (chains, combine): accuracy with its 95% Wilson interval."""
    device = next(model.parameters()).device
    model.eval()
    rows = []
    for c in chains:
        torch.manual_seed(seed)
        correct = {mode: 0 for mode in combines}
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            z = model.infer(xb, n_chains=c)
            for mode in combines:
                correct[mode] += (model.classify(z, mode).argmax(1) == yb).sum().item()
        for mode in combines:
            acc = correct[mode] / len(y)
            low, high = wilson_interval(correct[mode], len(y))
            rows.append({"chains": c, "combine": mode, "n": len(y), "accuracy": acc,
                         "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def chains_study(
    dataset: str,
    chains: Sequence[int],
    out_dir: str | Path,
    *,
    n: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    data_dir: str | None = None,
    command: str = "",
) -> Path:
    """Short Run accuracy per (chains, combine) beside the ConvNet's; writes chains.md/.csv."""
    data = load_dataset(dataset, data_dir)
    n = len(data.x_test) if n is None else min(n, len(data.x_test))
    x, y = data.x_test[:n], data.y_test[:n]
    zoo = {name: load_named_model(name, dataset, device=device, data_dir=data_dir)
           for name in ("shortrun", "convnet")}
    shortrun, card = zoo["shortrun"].module, zoo["shortrun"].card
    frame = chain_accuracy(shortrun, x, y, chains, seed=seed).assign(model="shortrun")
    convnet, convnet_card = zoo["convnet"].module, zoo["convnet"].card
    correct = (predict_draws(convnet, x, 1, 500, device)[0] == y).sum().item()
    low, high = wilson_interval(correct, n)
    frame = pd.concat([pd.DataFrame([{"model": "convnet", "chains": "-", "combine": "-", "n": n,
                                      "accuracy": correct / n, "ci_low": low,
                                      "ci_high": high}]), frame], ignore_index=True)
    frame["checkpoint"] = [convnet_card["sha256"][:12]] + [card["sha256"][:12]] * (len(frame) - 1)
    frame = frame[["model", "chains", "combine", "n", "accuracy", "ci_low", "ci_high",
                   "checkpoint"]]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "chains.csv", frame.to_csv(index=False))
    shown = frame.copy()
    shown["accuracy"] = [f"{100 * a:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}]"
                         for a, lo, hi in zip(frame.accuracy, frame.ci_low, frame.ci_high,
                                              strict=True)]
    shown = shown.drop(columns=["ci_low", "ci_high"])
    text = (f"Clean test accuracy on {dataset} (first {n} test images), 95% Wilson intervals; "
            f"`{command}`\n\n" + shown.to_markdown(index=False) + "\n")
    atomic_write_text(out / "chains.md", text)
    return out / "chains.md"
