"""Attacks through Croce & Hein's own AutoAttack code (the optional extra
``robbench[autoattack]``, the PyPI package ``pyautoattack``): a cross-check of robbench's own
AutoAttack, APGD, APGD-T, FAB-T and Square.

Each attack is the reference's class with robbench's settings (steps, target classes, queries,
restarts, EOT iterations where the reference has them; FAB and Square have none). The reference
seeds torch's global generator itself: it gets a seed drawn from the caller's random stream, so
that each batch's seed still decides everything. Its adversarial examples are scored by robbench
like any other backend's; the reference's own robust-accuracy report is not used.
"""

from __future__ import annotations

import torch
from pyautoattack import AutoAttack
from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
from pyautoattack.fab_pt import FABAttack_PT
from pyautoattack.square import SquareAttack

from robbench.attacks.target import Target

LP = {"linf": "Linf", "l2": "L2", "l1": "L1"}


def _seed() -> int:
    return int(torch.randint(0, 2**31 - 1, ()).item())


def _targets(norm: str, params) -> int:
    """Target classes: the setting, at most 5 at L1 (the reference's L1 standard version)."""
    return min(params["targets"], 5) if norm == "l1" else params["targets"]


def _apgd(model, norm: str, eps: float, params, seed: int, **kw) -> APGDAttack:
    return APGDAttack(model, n_iter=params["steps"], norm=LP[norm], eps=eps, seed=seed,
                      eot_iter=params.get("eot", 1), device=None, **kw)


def _evaluate(adversary: AutoAttack, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The adversarial examples of ``run_standard_evaluation`` (which returns them with the
    model's labels on them)."""
    adversary.device = x.device
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=len(x))
    return x_adv


def autoattack(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """``AutoAttack(version='standard')`` with robbench's steps, targets, queries and EOT."""
    out = []
    for eps in eps_list:
        seed = _seed()
        adversary = AutoAttack(target.model, norm=LP[norm], eps=eps, version="standard",
                               seed=seed, device=x.device)
        large = norm == "l1"
        adversary.apgd = _apgd(target.model, norm, eps, params, seed,
                               n_restarts=adversary.apgd.n_restarts, use_largereps=large,
                               logger=adversary.logger)
        adversary.apgd_targeted = APGDAttack_targeted(
            target.model, n_iter=params["steps"], norm=LP[norm], eps=eps, seed=seed,
            eot_iter=params.get("eot", 1), n_target_classes=_targets(norm, params),
            use_largereps=large, logger=adversary.logger)
        adversary.fab.n_iter = params["steps"]
        adversary.fab.n_target_classes = params["targets"]
        adversary.square.n_queries = params["n_queries"]
        out.append(_evaluate(adversary, x, y))
    return out


def autoattack_rand(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """``AutoAttack(version='rand')`` (APGD-CE, APGD-DLR) with robbench's steps and EOT."""
    out = []
    for eps in eps_list:
        seed = _seed()
        adversary = AutoAttack(target.model, norm=LP[norm], eps=eps, version="rand", seed=seed,
                               device=x.device)
        adversary.apgd = _apgd(target.model, norm, eps, params, seed, n_restarts=1,
                               logger=adversary.logger)
        out.append(_evaluate(adversary, x, y))
    return out


def apgd(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """The reference's ``APGDAttack`` (CE or DLR loss, restarts, EOT iterations)."""
    return [_apgd(target.model, norm, eps, params, _seed(), n_restarts=params["restarts"],
                  loss=params.get("loss", "ce")).perturb(x, y)
            for eps in eps_list]


def apgd_t(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """The reference's ``APGDAttack_targeted`` (targeted DLR, runner-up classes in turn)."""
    return [APGDAttack_targeted(target.model, n_iter=params["steps"], norm=LP[norm], eps=eps,
                                seed=_seed(), eot_iter=params.get("eot", 1),
                                n_restarts=params["restarts"],
                                n_target_classes=params["targets"]).perturb(x, y)
            for eps in eps_list]


def fab_t(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """The reference's ``FABAttack_PT`` in its targeted mode, one run per target class."""
    return [FABAttack_PT(target.model, norm=LP[norm], n_restarts=1, n_iter=params["steps"],
                         eps=eps, seed=_seed(), targeted=True,
                         n_target_classes=params["targets"]).perturb(x, y)
            for eps in eps_list]


def square(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """The reference's ``SquareAttack`` (p schedule rescaled to the query budget)."""
    return [SquareAttack(target.model, norm=LP[norm], n_queries=params["n_queries"], eps=eps,
                         p_init=0.8, n_restarts=params["restarts"], seed=_seed(),
                         resc_schedule=True).perturb(x, y)
            for eps in eps_list]
