"""Attacks through torchattacks (the optional extra ``robbench[torchattacks]``): a cross-check
of robbench's own implementations.

Only what torchattacks itself offers runs here: a setting it has no counterpart for (restarts
of PGD, the margin loss, EOT at L2) is an error rather than a silent substitute. FGSM and PGD
get the model through :class:`~robbench.attacks.logit_gradient.DirectionOnlyLogits`, so that
torchattacks' float32 batch-mean cross-entropy does not vanish on saturated examples (the one
known way its numbers differ from robbench's; see the README).
"""

from __future__ import annotations

from typing import Any

import torch
import torchattacks

from robbench.attacks.logit_gradient import DirectionOnlyLogits
from robbench.attacks.target import Target
from robbench.attacks.threat_model import within_budget

LP = {"linf": "Linf", "l2": "L2"}


def _plain_pgd_only(params: dict[str, Any], what: str) -> None:
    if params.get("restarts", 1) > 1 or params.get("loss", "ce") != "ce":
        raise ValueError(f"torchattacks' {what} runs one restart on cross-entropy; use "
                         "--backend robbench for --restarts or --loss margin")
    # torchattacks returns the last iterate: the best-iterate rule of robbench's engine does
    # not apply to it (its results record the backend)


def fgsm(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """``torchattacks.FGSM``; with EOT draws, ``EOTPGD`` of one step of size eps."""
    _plain_pgd_only(params, "FGSM")
    net = DirectionOnlyLogits(target.model)
    eot = params.get("eot", 1)
    if eot > 1:
        return [torchattacks.EOTPGD(net, eps=eps, alpha=eps, steps=1, eot_iter=eot,
                                    random_start=False)(x, y) for eps in eps_list]
    return [torchattacks.FGSM(net, eps=eps)(x, y) for eps in eps_list]


def pgd_steps(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """torchattacks' ``PGD`` or ``PGDL2`` by ``norm``; with EOT draws, ``EOTPGD`` (L-inf)."""
    _plain_pgd_only(params, "PGD")
    net = DirectionOnlyLogits(target.model)
    eot = params.get("eot", 1)
    common = dict(alpha=params["step_size"], steps=params["steps"],
                  random_start=params["random_start"])
    if eot > 1:
        if norm != "linf":
            raise ValueError("torchattacks has no EOT PGD at L2; use --backend robbench")
        return [torchattacks.EOTPGD(net, eps=eps, eot_iter=eot, **common)(x, y)
                for eps in eps_list]
    attack_class = {"linf": torchattacks.PGD, "l2": torchattacks.PGDL2}[norm]
    return [attack_class(net, eps=eps, **common)(x, y) for eps in eps_list]


def cw(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """``torchattacks.CW`` (one constant c: ``--search-steps 1``); robust at eps if no
    adversarial example within."""
    if params["search_steps"] != 1:
        raise ValueError(f"torchattacks' CW runs one constant c, not a binary search of "
                         f"{params['search_steps']} steps; use --search-steps 1 (with --c), or "
                         "--backend robbench or foolbox")
    attack = torchattacks.CW(target.model, c=params["c"], kappa=params["kappa"],
                             steps=params["steps"], lr=params["lr"])
    return within_budget(x, attack(x, y), eps_list, norm)


def apgd(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """``torchattacks.APGD`` with ``eot_iter``."""
    return [
        torchattacks.APGD(target.model, norm=LP[norm], eps=eps, steps=params["steps"],
                          n_restarts=params["restarts"], eot_iter=params["eot"],
                          loss=params["loss"], seed=_seed())(x, y)
        for eps in eps_list
    ]


def autoattack_rand(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """AutoAttack's version for randomised defenses as ``torchattacks.AutoAttack(version=
    'rand')`` builds it (APGD-CE, then APGD-DLR on the survivors), with the EOT draws and steps
    of ``params`` (torchattacks runs 10 steps; the reference implementation 100)."""
    return [
        torchattacks.MultiAttack([
            torchattacks.APGD(target.model, norm=LP[norm], eps=eps, steps=params["steps"],
                              n_restarts=1, eot_iter=params["eot"], loss=loss, seed=_seed())
            for loss in ("ce", "dlr")
        ])(x, y)
        for eps in eps_list
    ]


def square(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """``torchattacks.Square`` (score-based black box)."""
    return [
        torchattacks.Square(target.model, norm=LP[norm], eps=eps, n_queries=params["n_queries"],
                            n_restarts=params["restarts"], seed=_seed())(x, y)
        for eps in eps_list
    ]


def _seed() -> int:
    """torchattacks' APGD and Square reseed torch themselves: give them a seed drawn from the
    caller's random stream, so that each batch's seed still decides everything."""
    return int(torch.randint(0, 2**31 - 1, ()).item())
