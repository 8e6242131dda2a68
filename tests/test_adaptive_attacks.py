"""Adaptive attacks: every new attack respects its threat model; latent-pgd, fixed-noise-pgd and
transfer do what they claim; the run grid carries EOT and loads the transfer source."""

from __future__ import annotations

import pytest
import torch
from conftest import run_in, target

from robbench.attacks.adaptive import (
    class_latent_means,
    latent_fn,
    nearest_other_class,
    pick_source,
)
from robbench.attacks.pgd import pgd
from robbench.attacks.registry import attack_params, craft, get_attack
from robbench.attacks.threat_model import perturbation_norms
from robbench.runs.config import RunConfig

TINY = {
    "eot-pgd": {"steps": 2, "eot": 2},
    "pgd": {"steps": 2, "eot": 2, "restarts": 2},
    "fgsm": {"eot": 3},
    "pgd-l2": {"steps": 2, "eot": 2},
    "apgd": {"steps": 3, "eot": 2},
    "latent-pgd": {"steps": 2, "eot": 2},
    "fixed-noise-pgd": {"steps": 2},
    "transfer": {"steps": 2, "source_eot": 2},
    "square": {"n_queries": 10},
}


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("which", ["convnet", "shortrun"])
def test_new_attacks_respect_their_threat_model(name, which, request, digits):
    models = {"convnet": target(request.getfixturevalue("tiny_convnet")),
              "shortrun": target(request.getfixturevalue("tiny_shortrun"))}
    x, y = digits.x_test[:12], digits.y_test[:12]
    spec = get_attack(name)
    eps = [0.5, 1.0] if spec.norm == "l2" else [0.05, 0.2]
    torch.manual_seed(0)
    adv = craft(name, models[which], x, y, eps, params=attack_params(name, **TINY[name]),
                companions=models)
    for e, x_adv in adv.items():
        assert perturbation_norms(x, x_adv, spec.norm).max() <= e + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
    if name not in ("square", "apgd"):  # these return x where they find nothing
        assert not torch.equal(adv[eps[-1]], x)


def test_autoattack_rand_runs_the_eot_and_steps_it_records(tiny_shortrun, digits, monkeypatch):
    import torchattacks

    seen = []
    original = torchattacks.APGD.__init__

    def spy(self, *args, **kw):
        seen.append((kw["loss"], kw["eot_iter"], kw["steps"]))
        original(self, *args, **kw)

    monkeypatch.setattr(torchattacks.APGD, "__init__", spy)
    x, y = digits.x_test[:6], digits.y_test[:6]
    adv = craft("autoattack-rand", target(tiny_shortrun), x, y, [0.1], backend="torchattacks",
                params=attack_params("autoattack-rand", eot=3, steps=2))[0.1]
    assert seen == [("ce", 3, 2), ("dlr", 3, 2)]
    assert perturbation_norms(x, adv, "linf").max() <= 0.1 + 1e-6
    # the reference implementation's choices (torchattacks' own AutoAttack runs 10 steps)
    assert attack_params("autoattack-rand")["eot"] == 20
    assert attack_params("autoattack-rand")["steps"] == 100


@pytest.mark.slow
def test_autoattack_rand_respects_its_threat_model(tiny_shortrun, digits):
    x, y = digits.x_test[:8], digits.y_test[:8]
    adv = craft("autoattack-rand", target(tiny_shortrun), x, y, [0.1])[0.1]
    assert perturbation_norms(x, adv, "linf").max() <= 0.1 + 1e-6


def test_latent_pgd_pulls_the_latent_toward_another_class(shipped_convnet, digits):
    x, y = digits.x_test[:60], digits.y_test[:60]
    encode = latent_fn(target(shipped_convnet))
    means, present = class_latent_means(encode, x, y, 10)
    with torch.no_grad():
        goal = nearest_other_class(encode(x), y, means, present)
    assert (goal != y).all()
    adv = craft("latent-pgd", target(shipped_convnet), x, y, [0.2],
                params=attack_params("latent-pgd", steps=10))[0.2]
    with torch.no_grad():
        before = (encode(x) - means[goal]).norm(dim=1)
        after = (encode(adv) - means[goal]).norm(dim=1)
    assert after.mean() < 0.8 * before.mean()


@pytest.mark.equivalence
def test_fixed_noise_pgd_is_pgd_on_the_fixed_chain(shipped_shortrun, digits):
    x, y = digits.x_test[:8], digits.y_test[:8]
    params = attack_params("fixed-noise-pgd", steps=3, noise_seed=5)
    torch.manual_seed(0)
    adv = craft("fixed-noise-pgd", target(shipped_shortrun), x, y, [0.1], params=params)[0.1]
    assert shipped_shortrun.noise_seed is None  # fresh noise again for evaluation
    with shipped_shortrun.fixed_noise(5):
        torch.manual_seed(0)
        expected = pgd(shipped_shortrun, x, y, eps=0.1, steps=3, step_size=0.01)
    torch.testing.assert_close(adv, expected)


@pytest.mark.equivalence
def test_transfer_crafts_on_the_source_and_needs_one(shipped_convnet, shipped_shortrun, digits):
    x, y = digits.x_test[:16], digits.y_test[:16]
    params = attack_params("transfer", steps=3)
    torch.manual_seed(0)
    adv = craft("transfer", target(shipped_shortrun), x, y, [0.1], params=params,
                companions={"convnet": target(shipped_convnet),
                            "shortrun": target(shipped_shortrun)})[0.1]
    torch.manual_seed(0)
    expected = pgd(shipped_convnet, x, y, eps=0.1, steps=3, step_size=0.01)
    torch.testing.assert_close(adv, expected)
    with pytest.raises(ValueError, match="source"):
        craft("transfer", target(shipped_shortrun), x, y, [0.1], params=params,
              companions={"shortrun": target(shipped_shortrun)})
    assert list(get_attack("transfer").backends) == ["robbench"]


def test_transfer_crafts_on_the_named_source_even_where_another_comes_first():
    """A defense evaluated beside its own base names the base as the source (params
    ``source``): that companion is used, not the first other one, and an unknown name fails
    naming those loaded."""
    zoo, base, defended = (target(torch.nn.Linear(4, 3), classes=3) for _ in range(3))
    companions = {"zoo-convnet": zoo, "base": base, "defended": defended}
    assert pick_source(defended, companions) is zoo
    assert pick_source(defended, companions, "base") is base
    with pytest.raises(ValueError, match="'mine' is not loaded; loaded: zoo-convnet, base"):
        pick_source(defended, companions, "mine")


def test_run_grid_records_eot_and_loads_the_transfer_source(tmp_path):
    config = RunConfig(models=["shortrun"], attacks=["eot-pgd", "transfer"], eps=[0.1], n=8,
                       draws=2, params={"steps": 2, "eot": 2, "source_eot": 2})
    _, summary = run_in(config, tmp_path / "run")
    rows = summary.set_index("attack")
    assert rows.loc["eot-pgd", "eot"] == 2
    assert rows.loc["eot-pgd", "backend"] == "robbench"
    assert rows.loc["transfer", "n"] == 8


def test_an_attack_without_its_hook_is_skipped_with_the_reason(tmp_path, digits):
    """A random model without a latent or a fixed-noise hook: both attacks are rows saying
    why they did not run, never silently missing or silently replaced."""
    from robbench.models.zoo import LoadedModel
    from robbench.records.store import MemoryStore
    from robbench.runs.executor import execute

    class Noisy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(64, 10)

        def forward(self, x):
            return self.linear((x + 0.1 * torch.randn_like(x)).flatten(1))

    noisy = Noisy()
    config = RunConfig(models=["noisy"], attacks=["latent-pgd", "fixed-noise-pgd"], eps=[0.1],
                       draws=2, selection_draws=2, params={"steps": 1, "eot": 1})
    summary = execute(config, {"noisy": LoadedModel("noisy", noisy, {"sha256": "x" * 64},
                                                    "test")},
                      digits.x_test[:6], digits.y_test[:6], MemoryStore(), quiet=True)
    rows = summary.set_index("attack")
    assert rows.loc["latent-pgd", "skipped"] == "no latent hook (infer or embed)"
    assert rows.loc["fixed-noise-pgd", "skipped"] == "random model without a fixed_noise hook"
    from robbench.report.tables import comparison_table

    table = comparison_table(summary)
    assert "skipped: no latent hook (infer or embed)" in table
