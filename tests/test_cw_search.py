"""CW-L2's binary search over c (Carlini & Wagner 2017): the schedule of constants, the early
abort, and that searching breaks what one small constant cannot."""

from __future__ import annotations

import pytest
import torch

from robbench.attacks import cw as cw_module
from robbench.attacks.cw import cw_l2
from robbench.attacks.registry import ATTACKS


def test_the_search_moves_c_as_the_paper_does(monkeypatch, digits):
    """Tenfold while no run succeeds, then halfway between the last failure and success."""
    tried = []

    def fake_run(model, x, y, const, keep, **kwargs):
        tried.append(const[0].item())
        return const >= 0.05  # any constant of at least 0.05 breaks the example

    monkeypatch.setattr(cw_module, "_one_constant", fake_run)
    cw_l2(lambda x: x, digits.x_test[:1], digits.y_test[:1], [1.0], search_steps=6)
    lo, hi = 0.01, 0.1
    expected = [1e-3, 1e-2, 0.1, (lo + hi) / 2]
    expected.append((lo + expected[-1]) / 2)  # 0.055 succeeded: upper bound 0.055
    expected.append((expected[-1] + 0.055) / 2)  # 0.0325 failed: lower bound 0.0325
    assert tried == pytest.approx(expected, rel=1e-6)  # float32 constants


class ConstantLogits(torch.nn.Module):
    """Always class 0 by a margin of 100, whatever the input (and counts its calls)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.bias = torch.nn.Parameter(torch.tensor([100.0] + [0.0] * 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.bias.expand(len(x), -1) + 0 * x.flatten(1).sum(1, keepdim=True)


def test_a_run_whose_objective_stops_falling_aborts_early(digits):
    model = ConstantLogits()
    x, y = digits.x_test[:3], torch.zeros(3, dtype=torch.long)
    out = cw_l2(model, x, y, [1.0], search_steps=2, steps=100)
    assert torch.equal(out[0], x)
    # Checks at steps 0 and 10 of each run: the objective has not moved, so each run stops
    # at its second check (11 passes) instead of 101.
    assert model.calls == 2 * 11
    model.calls = 0
    cw_l2(model, x, y, [1.0], search_steps=1, steps=100, abort_early=False)
    assert model.calls == 101


def test_searching_c_breaks_more_than_its_first_constant(shipped_convnet, digits):
    x, y = digits.x_test[:30], digits.y_test[:30]

    def broken(search_steps: int) -> int:
        (adv,) = cw_l2(shipped_convnet, x, y, [2.0], search_steps=search_steps, steps=60,
                       lr=0.05)
        with torch.no_grad():
            return int((shipped_convnet(adv).argmax(1) != y).sum())

    one, searched = broken(1), broken(5)
    assert searched > one + 5, (one, searched)


def test_cw_defaults_are_the_papers_search_with_1000_steps():
    d = ATTACKS["cw"].defaults
    assert (d["c"], d["search_steps"], d["steps"], d["kappa"], d["lr"]) == (1e-3, 9, 1000,
                                                                           0.0, 0.01)
