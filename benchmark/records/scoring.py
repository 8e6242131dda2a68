"""Scoring adversarial examples: R fresh passes per example, three metrics, valid intervals.

A randomised model's prediction on an input is itself random, so "robust accuracy" is three
numbers (each over R passes of every example):

- **expected**: the mean over examples of the fraction of passes classified correctly;
- **majority**: an example counts if more than half of its passes are correct (a tie at even R
  counts as not robust: the attacker wins ties);
- **all-draws**: an example counts only if every one of its R passes is correct (the attacker
  may resubmit the same input).

For a deterministic model (R = 1) the three coincide. Intervals are 95%: Wilson's for 0/1
per-example outcomes (deterministic models, majority, all-draws, or expected scores that
happen to be all 0 or 1), Student's t for a mean of per-example fractions.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats
from torch import nn

METRICS = ("expected", "majority", "all_draws")
"""The three robust accuracies of a stochastic model (see the module docstring)."""

METRIC_LABELS = {"expected": "expected", "majority": "majority", "all_draws": "all-draws"}

ALL_DRAWS_AT = (10,)
"""Resubmission budgets reported besides R: all-draws over only the first 10 passes, where a
cell has more (a headline scores with R = 50)."""


@torch.no_grad()
def predict_draws(
    model: nn.Module, x: torch.Tensor, draws: int, batch_size: int, device: str | torch.device
) -> torch.Tensor:
    """Predicted labels of shape (draws, N): ``draws`` independent passes over ``x``, in
    batches on ``device``."""
    model.eval()
    out = torch.empty((draws, len(x)), dtype=torch.long)
    for r in range(draws):
        for i in range(0, len(x), batch_size):
            out[r, i : i + batch_size] = model(x[i : i + batch_size].to(device)).argmax(1).cpu()
    return out


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / denom
    # At p = 0 or 1 a bound equals p exactly; rounding must not leave p outside it.
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def mean_interval(scores: np.ndarray) -> tuple[float, float]:
    """95% interval of the mean of per-example scores in [0, 1]: Wilson's when every score is
    0 or 1 (a binomial count), else Student's t on the scores, clipped to [0, 1]. Scores
    with no spread at all fall back to Wilson's, the widest a [0, 1] variable with that mean
    can need, rather than claim a zero-width interval."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if n == 0:
        return 0.0, 1.0
    mean = float(scores.mean())
    if np.isin(scores, (0.0, 1.0)).all() or n < 2 or scores.std() == 0:
        return wilson_interval(float(scores.sum()), n)
    half = float(stats.t.ppf(0.975, n - 1) * scores.std(ddof=1) / math.sqrt(n))
    return max(0.0, mean - half), min(1.0, mean + half)


def per_example(correct: np.ndarray, metric: str) -> np.ndarray:
    """Each example's score under ``metric`` from its (R, N) 0/1 correctness over R passes."""
    correct = np.asarray(correct, dtype=bool)
    if metric == "expected":
        return correct.mean(0)
    if metric == "majority":
        return (2 * correct.sum(0) > correct.shape[0]).astype(np.float64)
    if metric == "all_draws":
        return correct.all(0).astype(np.float64)
    raise ValueError(f"metric {metric!r} is unknown; allowed: {', '.join(METRICS)}")


def metric_fields(scores: dict[str, np.ndarray]) -> dict[str, float]:
    """Record fields of per-example scores per metric: n, correct, accuracy and ci for
    ``expected``, then ``<metric>``, ``<metric>_low``, ``<metric>_high`` for the others."""
    expected = scores["expected"]
    n = len(expected)
    low, high = mean_interval(expected)
    mean = float(expected.mean()) if n else float("nan")
    fields = {"n": n, "correct": round(float(expected.sum()), 4), "accuracy": mean,
              "ci_low": low, "ci_high": high}
    for metric in METRICS[1:]:
        values = scores[metric]
        low, high = mean_interval(values)
        fields.update({metric: float(values.mean()) if n else float("nan"),
                       f"{metric}_low": low, f"{metric}_high": high})
    return fields


def accuracy_fields(preds: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor
                    ) -> dict[str, float]:
    """A cell's n, accuracy and intervals under every metric from its (R, N) predictions."""
    correct = np.asarray(preds) == np.asarray(y)[None]
    fields = metric_fields({m: per_example(correct, m) for m in METRICS})
    for r in ALL_DRAWS_AT:
        if correct.shape[0] > r:
            fields[f"all_draws@{r}"] = float(correct[:r].all(0).mean()) if correct.size else 0.0
    return fields


def accuracy_with_interval(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int, batch_size: int = 500,
    device: str | torch.device = "cpu",
) -> tuple[float, float, float]:
    """Expected accuracy over ``draws`` passes and its 95% interval: (accuracy, low, high)."""
    fields = accuracy_fields(predict_draws(model, x, draws, batch_size, device), y.cpu())
    return fields["accuracy"], fields["ci_low"], fields["ci_high"]
