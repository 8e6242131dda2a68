"""AutoAttack's standard version on robbench's own attacks: APGD-T, FAB-T and their projections,
APGD at L1, the L1 threat model, and the composition on survivors (deterministic and random)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import target
from scipy.optimize import Bounds, LinearConstraint, linprog, minimize

from robbench.attacks.apgd import apgd, apgd_targeted, ranked_classes
from robbench.attacks.autoattack import autoattack_standard
from robbench.attacks.eot import targeted_dlr_loss, targeted_margin
from robbench.attacks.fab import fab_targeted
from robbench.attacks.hyperplane_box import hyperplane_box_step
from robbench.attacks.l1_ball import project_l1_box
from robbench.attacks.registry import ATTACKS, craft
from robbench.attacks.threat_model import (
    ThreatModelViolation,
    check_threat_model,
    perturbation_norms,
)

EPS = {"linf": 0.3, "l2": 1.5, "l1": 4.0}


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
@pytest.mark.parametrize("model_name", ["tiny_convnet", "tiny_shortrun"])
def test_new_attacks_respect_their_threat_model(norm, model_name, request, digits):
    model = request.getfixturevalue(model_name)
    stochastic = model_name == "tiny_shortrun"
    x, y = digits.x_test[:6], digits.y_test[:6]
    torch.manual_seed(0)
    kw = dict(eps=EPS[norm], norm=norm, stochastic=stochastic, eot=2 if stochastic else 1,
              max_batch=12)
    outputs = {
        "apgd-t": apgd_targeted(model, x, y, steps=4, targets=2, **kw),
        "fab-t": fab_targeted(model, x, y, steps=4, targets=2, **kw),
        "autoattack": autoattack_standard(model, x, y, steps=3, targets=2, n_queries=8, **kw),
    }
    if norm == "l1":
        outputs["apgd-l1 stages"] = apgd(model, x, y, steps=5, large_eps=True, **kw)
    for name, x_adv in outputs.items():
        check_threat_model(x, x_adv, norm, EPS[norm])
        if name != "fab-t":  # FAB returns x where it found nothing within eps
            assert not torch.equal(x_adv, x), name


def test_l1_threat_model_is_checked():
    x = torch.full((2, 1, 4, 4), 0.5)
    x_adv = x.clone()
    x_adv[0, 0, 0, :] += 0.3  # L1 norm 1.2, L-inf 0.3
    assert perturbation_norms(x, x_adv, "l1").tolist() == pytest.approx([1.2, 0.0])
    check_threat_model(x, x_adv, "l1", 1.2)
    with pytest.raises(ThreatModelViolation, match="l1 budget"):
        check_threat_model(x, x_adv, "l1", 1.0)


def _lp_reference(t: np.ndarray, w: np.ndarray, c: float, norm: str) -> float | None:
    """The smallest norm of d with <w, d> = c and 0 <= t + d <= 1, by scipy (None: the box
    cannot reach the hyperplane)."""
    d = len(t)
    bounds = [(-ti, 1 - ti) for ti in t]
    reach = np.abs(w) @ np.where(w * np.sign(c) > 0, 1 - t, t)
    if abs(c) > reach:
        return None
    if norm == "l2":
        res = minimize(lambda z: (z ** 2).sum(), np.zeros(d), jac=lambda z: 2 * z,
                       bounds=Bounds([b[0] for b in bounds], [b[1] for b in bounds]),
                       constraints=[LinearConstraint(w[None], c, c)], method="trust-constr",
                       options={"gtol": 1e-12, "xtol": 1e-14, "maxiter": 3000})
        return float(np.sqrt(res.fun))
    if norm == "l1":  # d = p - q, p, q >= 0
        res = linprog(np.ones(2 * d), A_eq=np.r_[w, -w][None], b_eq=[c],
                      bounds=[(0, 1 - ti) for ti in t] + [(0, ti) for ti in t])
        return float(res.fun) if res.success else None
    a_ub = np.block([[np.eye(d), -np.ones((d, 1))], [-np.eye(d), -np.ones((d, 1))]])
    res = linprog(np.r_[np.zeros(d), 1.0], A_ub=a_ub, b_ub=np.zeros(2 * d),
                  A_eq=np.r_[w, 0.0][None], b_eq=[c], bounds=bounds + [(0, None)])
    return float(res.fun) if res.success else None


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_fab_projection_is_the_smallest_step_onto_the_hyperplane_in_the_box(norm):
    gen = torch.Generator().manual_seed(1)
    t = torch.rand(25, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(25, 6, generator=gen, dtype=torch.float64)
    w[0, 2] = 0.0
    c = 0.5 * torch.randn(25, generator=gen, dtype=torch.float64)
    step = hyperplane_box_step(t, w, c, norm)
    assert ((t + step) >= -1e-12).all() and ((t + step) <= 1 + 1e-12).all()
    norms = perturbation_norms(step, torch.zeros_like(step), norm)
    checked = 0
    for i in range(len(t)):
        best = _lp_reference(t[i].numpy(), w[i].numpy(), c[i].item(), norm)
        if best is None:  # the box cannot reach the hyperplane: the whole room is taken
            assert abs((w[i] * step[i]).sum()) < abs(c[i])
            continue
        checked += 1
        torch.testing.assert_close((w[i] * step[i]).sum(), c[i], atol=1e-9, rtol=0)
        # scipy's solvers stop at about 1e-8 of the optimum; the exact solution is never larger
        assert norms[i].item() <= best + 1e-6, (i, norms[i].item(), best)
        assert norms[i].item() >= best - 1e-6, (i, norms[i].item(), best)
    assert checked >= 10


def test_l1_box_projection_is_the_closest_point_of_the_ball_in_the_box():
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(6, 1, 3, 3, generator=gen, dtype=torch.float64)
    x_adv = x + torch.randn(x.shape, generator=gen, dtype=torch.float64)
    p = project_l1_box(x, x_adv, 1.0)
    assert (perturbation_norms(x, p, "l1") <= 1.0 + 1e-9).all()
    assert p.min() >= 0 and p.max() <= 1
    for i in range(len(x)):
        xi, yi = x[i].flatten().numpy(), x_adv[i].flatten().numpy()
        res = minimize(lambda z, yi=yi: ((z - yi) ** 2).sum(), xi, method="SLSQP",
                       bounds=[(0, 1)] * len(xi), options={"ftol": 1e-14, "maxiter": 500},
                       constraints=[{"type": "ineq",
                                     "fun": lambda z, xi=xi: 1.0 - np.abs(z - xi).sum()}])
        ours = ((p[i].flatten().numpy() - yi) ** 2).sum()
        assert ours <= res.fun + 1e-6  # scipy's SLSQP stops near, not at, the optimum


def test_targeted_losses_on_hand_made_logits():
    logits = torch.tensor([[4.0, 1.0, 3.0, 0.0, 2.0]])
    y, t = torch.tensor([0]), torch.tensor([2])
    # -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2) = -(4 - 3) / (4 - (2 + 1) / 2)
    torch.testing.assert_close(targeted_dlr_loss(logits, y, t), torch.tensor([-0.4]))
    torch.testing.assert_close(targeted_dlr_loss(3 * logits - 1, y, t), torch.tensor([-0.4]))
    torch.testing.assert_close(targeted_margin(logits, y, t), torch.tensor([-1.0]))


def test_targets_are_the_runner_up_classes_of_the_clean_logits():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[0.0, 5.0, 1.0, 3.0]]).repeat(len(x), 1)

    assert ranked_classes(Fixed(), torch.zeros(2, 1, 2, 2)).tolist() == [[1, 3, 2, 0]] * 2


def test_fab_finds_smaller_perturbations_than_its_budget_on_the_shipped_convnet(
        shipped_convnet, digits):
    """FAB is a minimal-norm attack: what it breaks at eps 0.2 it breaks well inside 0.2."""
    x, y = digits.x_test[:40], digits.y_test[:40]
    torch.manual_seed(0)
    x_adv = fab_targeted(shipped_convnet, x, y, eps=0.2, norm="linf", steps=20, targets=3)
    with torch.no_grad():
        broken = shipped_convnet(x_adv).argmax(1) != y
    assert broken.sum() >= 30
    assert perturbation_norms(x, x_adv, "linf")[broken].max() <= 0.2


def test_autoattack_on_a_random_model_warns_that_rand_is_the_version_to_quote(
        tiny_shortrun, digits):
    x, y = digits.x_test[:4], digits.y_test[:4]
    params = {**ATTACKS["autoattack"].defaults, "steps": 2, "targets": 1, "n_queries": 3,
              "eot": 2}
    with pytest.warns(UserWarning, match="autoattack-rand"):
        craft("autoattack", target(tiny_shortrun), x, y, [0.1], params=params)


def test_every_norm_has_apgd_t_fab_t_and_autoattack_registered():
    for suffix, norm in (("", "linf"), ("-l2", "l2"), ("-l1", "l1")):
        for base in ("apgd-t", "fab-t", "autoattack"):
            assert ATTACKS[base + suffix].norm == norm
    assert ATTACKS["apgd-l1"].norm == "l1"
