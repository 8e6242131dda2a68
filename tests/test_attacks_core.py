"""Core attacks respect their threat models; PGD breaks the ConvNet; violations raise."""

from __future__ import annotations

import pytest
import torch
from conftest import ConfidentLinear, accuracy_of, target

from robbench.attacks.registry import attack_params, craft
from robbench.attacks.threat_model import (
    ThreatModelViolation,
    check_threat_model,
    perturbation_norms,
)

FAST = {"fgsm": {}, "pgd": {"steps": 3}, "pgd-l2": {"steps": 3}, "cw": {"steps": 5}}


@pytest.mark.parametrize("name", list(FAST))
@pytest.mark.parametrize("model_name", ["tiny_convnet", "tiny_shortrun"])
def test_attacks_respect_their_threat_model(name, model_name, request, digits):
    model = request.getfixturevalue(model_name)
    x, y = digits.x_test[:16], digits.y_test[:16]
    eps = [0.05, 0.3] if name in ("fgsm", "pgd") else [0.5, 1.5]
    adv = craft(name, target(model), x, y, eps, params=attack_params(name, **FAST[name]))
    norm = "linf" if name in ("fgsm", "pgd") else "l2"
    for e, x_adv in adv.items():
        assert perturbation_norms(x, x_adv, norm).max() <= e + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        assert not torch.equal(x_adv, x) or name == "cw"


def test_pgd_eps_03_breaks_the_convnet(shipped_convnet, digits):
    x, y = digits.x_test[:200], digits.y_test[:200]
    x_adv = craft("pgd", target(shipped_convnet), x, y, [0.3])[0.3]
    acc = accuracy_of(shipped_convnet, x_adv, y)
    assert acc <= 0.02


def test_violations_raise_and_name_the_budget():
    x = torch.full((3, 1, 8, 8), 0.5)
    with pytest.raises(ThreatModelViolation, match="linf budget"):
        check_threat_model(x, x + 0.2, "linf", 0.1)
    with pytest.raises(ThreatModelViolation, match=r"leave \[0, 1\]"):
        check_threat_model(x, x + 0.6, "linf", 1.0)
    with pytest.raises(ThreatModelViolation, match="NaN"):
        check_threat_model(x, x * float("nan"), "l2", 1.0)
    check_threat_model(x, x + 0.1, "linf", 0.1)


def broken_craft(target, x, y, eps, norm, params):
    """A backend that returns examples outside the budget."""
    return [x + 2 * e for e in eps]


def test_craft_checks_what_a_backend_returns(tiny_convnet, digits, monkeypatch):
    from robbench.attacks import registry

    spec = registry.ATTACKS["fgsm"]
    monkeypatch.setitem(registry.ATTACKS, "fgsm", registry.AttackSpec(
        spec.name, spec.norm, spec.description, spec.defaults,
        {"robbench": "test_attacks_core:broken_craft"}))
    with pytest.raises(ThreatModelViolation):
        craft("fgsm", target(tiny_convnet), digits.x_test[:4], digits.y_test[:4], [0.1])


def test_unknown_attack_settings_are_rejected():
    with pytest.raises(ValueError, match="attack 'pgdd' is unknown"):
        attack_params("pgdd")
    with pytest.raises(ValueError, match="'kappa' does not apply to attack 'pgd'"):
        attack_params("pgd", kappa=1.0)


@pytest.mark.parametrize("backend", ["torchattacks", "foolbox"])
def test_sign_and_direction_attacks_move_confident_examples(backend):
    """A saturated softmax gives float32 cross-entropy a zero gradient; FGSM and PGD still step."""
    model = ConfidentLinear(margin=200.0)
    x, y = torch.full((4, 1, 4, 4), 0.5), torch.zeros(4, dtype=torch.long)
    for name, norm in (("fgsm", "linf"), ("pgd", "linf"), ("pgd-l2", "l2")):
        params = (None if name == "fgsm" else
                  attack_params(name, steps=3, step_size=0.05, random_start=False))
        adv = craft(name, target(model), x, y, [0.1], backend=backend, params=params)[0.1]
        assert (perturbation_norms(x, adv, norm) > 0.099).all(), (name, backend)


@pytest.mark.equivalence
def test_pgd_l2_takes_the_same_steps_whatever_the_batch():
    """torchattacks averages the loss over the batch; tiny gradients must not shrink the step."""
    model = ConfidentLinear(margin=20.0)
    x = torch.rand(64, 1, 4, 4) * 0.2 + 0.4
    y = torch.zeros(64, dtype=torch.long)
    params = attack_params("pgd-l2", steps=3, step_size=0.1, random_start=False)
    whole = craft("pgd-l2", target(model), x, y, [1.0], params=params)[1.0]
    halves = torch.cat([craft("pgd-l2", target(model), x[i:i + 32], y[i:i + 32], [1.0],
                              params=params)[1.0] for i in (0, 32)])
    torch.testing.assert_close(whole, halves)
    assert torch.allclose((whole - x).flatten(1).norm(dim=1), torch.tensor(0.3), atol=1e-4)
