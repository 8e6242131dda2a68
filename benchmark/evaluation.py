"""Classifying (adversarial) examples: R fresh forward passes for a stochastic model."""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def predict_draws(
    model: nn.Module, x: torch.Tensor, draws: int = 1, batch_size: int = 500
) -> torch.Tensor:
    """Predicted labels of shape (R, N): R independent passes (R = 1 for a deterministic model)."""
    model.eval()
    device = next(model.parameters()).device
    draws = draws if getattr(model, "stochastic", False) else 1
    out = torch.empty((draws, len(x)), dtype=torch.long)
    for r in range(draws):
        for i in range(0, len(x), batch_size):
            out[r, i : i + batch_size] = model(x[i : i + batch_size].to(device)).argmax(1).cpu()
    return out


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (successes may be a mean over draws)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At p = 0 or 1 a bound equals p exactly; rounding must not leave p outside it.
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def robust_accuracy(preds: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Per-example fraction of draws classified correctly, and its mean (the accuracy)."""
    per_example = (preds == y.to(preds.device)[None]).float().mean(0)
    return per_example, per_example.mean().item() if len(y) else float("nan")


def accuracy_fields(preds: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """A cell's n, correct, accuracy and 95% Wilson interval from its predictions (draws x n)."""
    _, acc = robust_accuracy(preds, y)
    n = len(y)
    low, high = wilson_interval(acc * n, n)
    return {"n": n, "correct": round(acc * n, 4), "accuracy": acc, "ci_low": low,
            "ci_high": high}


def accuracy_with_interval(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int
) -> tuple[float, float, float]:
    """Accuracy over ``draws`` passes and its 95% Wilson interval: (accuracy, low, high)."""
    fields = accuracy_fields(predict_draws(model, x, draws), y)
    return fields["accuracy"], fields["ci_low"], fields["ci_high"]
