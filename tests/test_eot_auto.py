"""EOT by convergence: a model whose noise needs many draws climbs the ladder further than the
Short Run classifier, and the draws it gets make the attack stronger beyond the interval."""

from __future__ import annotations

import math

import pytest
import torch

from robbench.models.zoo import LoadedModel, load_named_model
from robbench.records.store import MemoryStore
from robbench.runs.config import RunConfig
from robbench.runs.eot_auto import choose_eot, eot_ladder
from robbench.runs.executor import execute

CONFIG = RunConfig(models=["model"], attacks=["eot-pgd"], eps=[0.1], n=100, draws=10,
                   selection_draws=2, params={"steps": 20, "step_size": 0.0125})


class ShatteredLinear(torch.nn.Module):
    """A linear classifier plus a small random-phase sinusoid of high frequency: its value
    hardly moves the prediction, but a single draw's input gradient is dominated by it
    (randomised gradient obfuscation); averaged over many draws it cancels out."""

    def __init__(self, linear: torch.nn.Linear, amplitude: float = 0.02, frequency: float = 1000):
        super().__init__()
        self.linear, self.amplitude, self.frequency = linear, amplitude, frequency
        self.register_buffer("u", torch.randn(10, 64, generator=torch.Generator().manual_seed(1)))

    def forward(self, x):
        flat = x.flatten(1)
        phase = 2 * math.pi * torch.rand(len(x), 10, device=x.device)
        return self.linear(flat) + self.amplitude * torch.sin(
            self.frequency * flat @ self.u.t() + phase)


def _linear(digits) -> torch.nn.Linear:
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 10)
    optimizer = torch.optim.Adam(linear.parameters(), lr=0.05)
    for _ in range(200):
        loss = torch.nn.functional.cross_entropy(linear(digits.x_train.flatten(1)),
                                                 digits.y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return linear


def _chosen(module: torch.nn.Module, digits) -> dict:
    store = MemoryStore()
    execute(CONFIG, {"model": LoadedModel("model", module, {"sha256": "0" * 64}, "test")},
            digits.x_test, digits.y_test, store, quiet=True)
    return store.read_meta()["eot_auto"]["model__eot-pgd"]


def test_the_ladder_and_its_stopping_rule():
    assert eot_ladder(256) == [1, 4, 16, 64, 256] and eot_ladder(100) == [1, 4, 16, 64, 100]
    results = {1: (0.8, 0.05), 4: (0.6, 0.05), 16: (0.58, 0.05), 64: (0.0, 0.0)}
    choice = choose_eot(lambda m: results[m])
    assert choice["chosen"] == 16 and not choice["capped"]  # 0.6 -> 0.58 is within 0.05
    assert [r["eot"] for r in choice["ladder"]] == [1, 4, 16]
    capped = choose_eot(lambda m: (1.0 / m, 0.0), cap=16)
    assert capped["chosen"] == 16 and capped["capped"]


@pytest.fixture(scope="module")
def shortrun_choice(digits):
    return _chosen(load_named_model("shortrun", "digits").module, digits)


def test_a_model_that_needs_many_draws_gets_more_than_the_short_run_classifier(
        digits, shortrun_choice):
    shattered = _chosen(ShatteredLinear(_linear(digits)).eval(), digits)
    assert shattered["chosen"] > shortrun_choice["chosen"]
    assert shattered["chosen"] >= 64
    ladder = {r["eot"]: r for r in shattered["ladder"]}
    one, chosen = ladder[1], ladder[shattered["chosen"]]
    # the draws it was given lower its robust accuracy against one draw beyond the interval
    assert one["accuracy"] - chosen["accuracy"] > one["half_width"] + chosen["half_width"]
    assert shattered["examples"] == 100 and shattered["eps"] == 0.1
