"""foolbox backend: agrees with torchattacks on the deterministic ConvNet; EOT wrapper; CLI."""

from __future__ import annotations

import pytest
import torch
from conftest import accuracy_of, target

from robbench.attacks.foolbox_backend import EOTLogProb
from robbench.attacks.registry import attack_params, craft, get_attack
from robbench.attacks.threat_model import perturbation_norms
from robbench.cli import main

pytestmark = pytest.mark.equivalence

AGREEMENT = {"fgsm": [0.05, 0.1, 0.2, 0.3], "pgd": [0.05, 0.1, 0.2, 0.3],
             "pgd-l2": [0.5, 1.0]}
SETTINGS = {"fgsm": {}, "pgd": {"steps": 10, "step_size": 0.03},
            "pgd-l2": {}}  # 40 steps of 0.1; the random starts differ (radius ~ U vs U^(1/d))


def _accuracies(name, backend, model, x, y, eps, params):
    torch.manual_seed(0)
    adv = craft(name, target(model), x, y, eps, backend=backend, params=params)
    return [accuracy_of(model, adv[e], y) for e in eps]


@pytest.mark.parametrize("name", list(AGREEMENT))
def test_backends_agree_on_the_convnet_within_2_points(name, shipped_convnet, digits):
    x, y = digits.x_test[:300], digits.y_test[:300]
    eps = AGREEMENT[name]
    params = attack_params(name, **SETTINGS[name])
    ta = _accuracies(name, "torchattacks", shipped_convnet, x, y, eps, params)
    fb = _accuracies(name, "foolbox", shipped_convnet, x, y, eps, params)
    for e, a, b in zip(eps, ta, fb, strict=True):
        assert abs(a - b) <= 0.02 + 1e-6, f"{name} eps {e}: torchattacks {a:.3f} vs foolbox {b:.3f}"
    assert ta[-1] < ta[0]  # the attack does something


@pytest.mark.slow
def test_cw_backends_agree_on_the_convnet_within_2_points(shipped_convnet, digits):
    x, y = digits.x_test[:300], digits.y_test[:300]
    params = attack_params("cw", c=1.0, search_steps=1, steps=100)  # torchattacks: one c
    ta = _accuracies("cw", "torchattacks", shipped_convnet, x, y, [0.5, 1.0], params)
    fb = _accuracies("cw", "foolbox", shipped_convnet, x, y, [0.5, 1.0], params)
    assert all(abs(a - b) <= 0.02 for a, b in zip(ta, fb, strict=True))


def test_eot_wrapper_is_the_log_mean_softmax(shipped_convnet, tiny_shortrun, digits):
    x = digits.x_test[:5]
    with torch.no_grad():  # identical draws: log mean softmax = log softmax
        single = torch.log_softmax(shipped_convnet(x), 1)
        wrapped = EOTLogProb(shipped_convnet, 4)(x)
        torch.testing.assert_close(wrapped, single, atol=1e-4, rtol=0)  # float32 rounding
        with tiny_shortrun.fixed_noise(1):  # rows m * N + i get the noise of one big call
            logits = tiny_shortrun(x.repeat(3, 1, 1, 1)).view(3, 5, -1)
            expected = torch.softmax(logits, -1).mean(0).log()
            torch.testing.assert_close(EOTLogProb(tiny_shortrun, 3)(x), expected)


@pytest.mark.parametrize("name", ["fgsm", "pgd", "pgd-l2", "cw"])
def test_foolbox_attacks_on_the_stochastic_model_respect_the_threat_model(name, tiny_shortrun,
                                                                         digits):
    x, y = digits.x_test[:10], digits.y_test[:10]
    spec = get_attack(name)
    eps = [0.5, 2.0] if spec.norm == "l2" else [0.05, 0.3]
    overrides = {"steps": 3} if name != "fgsm" else {}
    if name != "cw":
        overrides["eot"] = 2
    adv = craft(name, target(tiny_shortrun), x, y, eps, backend="foolbox",
                params=attack_params(name, **overrides))
    for e, x_adv in adv.items():
        assert perturbation_norms(x, x_adv, spec.norm).max() <= e + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert "foolbox" in spec.backends


def test_foolbox_refuses_what_it_cannot_run(tiny_convnet, digits):
    x, y = digits.x_test[:4], digits.y_test[:4]
    with pytest.raises(ValueError, match="restart"):
        craft("pgd", target(tiny_convnet), x, y, [0.1], backend="foolbox",
              params=attack_params("pgd", restarts=2))


@pytest.mark.parametrize("attack", ["pgd", "cw"])
def test_cli_runs_the_foolbox_backend(attack, tmp_path, capsys):
    rc = main(["run", "--attack", attack, "--backend", "foolbox", "--model", "convnet",
               "--n", "20", "--steps", "3", "--out", str(tmp_path), "--quiet", "--device",
               "cpu"])
    assert rc == 0
    out = capsys.readouterr().out
    assert attack in out
    summary = next(tmp_path.glob("*/summary.csv")).read_text()
    assert ",foolbox," in summary
