"""The exact robustness of bit-depth reduction by enumeration, and robbench's BPDA attacks
reaching it: on the digits (2 bits) and in the committed MNIST leaderboard runs (1 bit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import first_300_test_images
from torch import nn

import robbench
from robbench.attacks.quantized_search import (
    exhaustive_quantized_robustness,
    reachable_count,
    reachable_levels,
)
from robbench.records.store import record_key
from robbench.report.leaderboard import leaderboard_entries
from robbench.report.worst_case import cell_outcomes, first_images, worst_case_scores

ROOT = Path(__file__).resolve().parents[1]


class PixelPair(nn.Module):
    """Class 1 exactly when the two given pixels of a 2x2 image are both (quantised to) 1."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        score = flat[:, self.a] + flat[:, self.b] - 1.5
        return torch.stack([-score, score], dim=1)


# pixel 0 reaches levels 0 and 1, pixel 1 only 1, pixel 2 only 0, pixel 3 both (eps 0.1)
X = torch.tensor([[[[0.45, 0.7], [0.1, 0.55]]]])


def test_each_pixel_reaches_the_levels_its_ball_crosses_and_the_count_multiplies():
    lo, hi = reachable_levels(X, 0.1, 2)
    assert lo.flatten().tolist() == [0.0, 1.0, 0.0, 0.0]
    assert hi.flatten().tolist() == [1.0, 1.0, 0.0, 1.0]
    assert reachable_count(X, 0.1, 2).tolist() == [4.0]
    assert reachable_count(X, 0.0, 2).tolist() == [1.0]
    assert reachable_count(torch.full((1, 1, 4, 4), 0.5), 0.5, 5).tolist() == [5.0 ** 16]


def test_an_example_is_broken_exactly_when_a_reachable_quantised_image_is_misclassified():
    y0 = torch.tensor([0])
    search = lambda base, y, **kw: exhaustive_quantized_robustness(  # noqa: E731
        base, X, y, eps=0.1, levels=2, **kw).tolist()
    assert search(PixelPair(0, 3), y0) == [0.0]  # both can reach 1 together
    assert search(PixelPair(0, 2), y0) == [1.0]  # pixel 2 cannot
    assert search(PixelPair(1, 3), torch.tensor([1])) == [0.0]  # pixel 3 can drop to 0
    assert search(PixelPair(0, 3), y0, max_images=3) != search(PixelPair(0, 3), y0)
    assert np.isnan(search(PixelPair(0, 3), y0, max_images=3)[0])  # too many: not searched
    assert search(PixelPair(0, 3), y0, batch=1) == [0.0]  # batching changes nothing
    with pytest.raises(ValueError, match="max_images 0"):
        search(PixelPair(0, 3), y0, max_images=0)


def test_bpda_pgd_reaches_the_exact_robust_accuracy_of_the_quantised_digits_convnet(digits):
    """At eps 0.1 the 2-bit digits keep pixels whose level is out of reach, so quantization
    keeps far more than the ConvNet; on every one of the first 100 test images small enough to
    enumerate, PGD-40 through BPDA breaks exactly the examples that can be broken."""
    x, y = digits.x_test[:100], digits.y_test[:100]
    model = robbench.load_model("quantize-bpda", "digits")
    exact = exhaustive_quantized_robustness(model.base, x, y, eps=0.1, levels=model.levels,
                                            max_images=2**14).numpy()
    searched = ~np.isnan(exact)
    assert searched.sum() >= 15 and (exact[searched] == 0).sum() >= 3  # not vacuous
    report = robbench.evaluate({"q": model}, x, y, attacks=["pgd"], eps=[0.1], progress=False)
    cell = report.outcomes("q", "pgd", 0.1)
    kept = np.zeros(len(x), bool)
    kept[cell["index"]] = cell["pred"][0] == cell["label"]
    np.testing.assert_array_equal(kept[searched], exact[searched] == 1)


def test_the_committed_mnist_leaderboard_reaches_the_exact_robustness_of_one_bit():
    """The worst case over every committed attack on 1-bit MNIST at eps 0.1 equals the exact
    answer on each of the first 300 test images whose ball reaches at most 1024 quantised
    images: the defense's high robust accuracy (Chen et al. 2019) is not the attacks' weakness."""
    x, y = first_300_test_images("mnist")
    model = robbench.load_model("quantize-bpda", "mnist")
    exact = exhaustive_quantized_robustness(model.base, x, y, eps=0.1, levels=model.levels,
                                            max_images=1024).numpy()
    searched = ~np.isnan(exact)
    entry = next(e for e in leaderboard_entries(ROOT, "mnist") if e.model == "quantize-bpda")
    cells = [cell_outcomes(rec["attack"], first_images(run.outcomes(record_key(rec)), len(x)))
             for run in entry.runs for rec in run.records()
             if rec["attack"] != "none" and float(rec["eps"]) == 0.1]
    assert {"pgd", "eot-pgd", "apgd", "square", "transfer"} <= {c.attack for c in cells}
    kept = worst_case_scores(cells, range(len(x)))["expected"] == 1  # the leaderboard's row
    assert searched.sum() >= 50
    np.testing.assert_array_equal(kept[searched], exact[searched] == 1)
