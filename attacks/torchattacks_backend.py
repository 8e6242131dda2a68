"""Attacks through torchattacks, plus robbench's batched-EOT PGD where torchattacks has none."""

from __future__ import annotations

from typing import Any

import torch
import torchattacks
from torch import nn

from robbench.attacks.eot import LOSSES
from robbench.attacks.logit_gradient import DirectionOnlyLogits
from robbench.attacks.pgd import pgd
from robbench.attacks.threat_model import perturbation_norms


def uses_eot_engine(params: dict[str, Any]) -> bool:
    """EOT > 1, restarts or a non-CE loss need robbench's engine instead of torchattacks."""
    return (params.get("eot", 1) > 1 or params.get("restarts", 1) > 1
            or params.get("loss") == "margin")


def engine_pgd(model: nn.Module, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """robbench's batched-EOT PGD (FGSM is one step of size eps without random start)."""
    fgsm = params.get("steps") is None
    return [
        pgd(
            model, x, y, eps=eps, norm=norm,
            steps=1 if fgsm else params["steps"],
            step_size=eps if fgsm else params["step_size"],
            random_start=False if fgsm else params.get("random_start", True),
            eot=params.get("eot", 1), restarts=params.get("restarts", 1),
            loss_fn=LOSSES[params.get("loss", "ce")], max_batch=params.get("max_batch"),
        )
        for eps in eps_list
    ]


def fgsm(model, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    if uses_eot_engine(params):
        return engine_pgd(model, x, y, eps_list, norm, {**params, "steps": None})
    return [torchattacks.FGSM(DirectionOnlyLogits(model), eps=eps)(x, y) for eps in eps_list]


def pgd_steps(model, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """torchattacks' ``PGD`` (L-inf) or ``PGDL2``, by ``norm``."""
    if uses_eot_engine(params):
        return engine_pgd(model, x, y, eps_list, norm, params)
    attack_class = {"linf": torchattacks.PGD, "l2": torchattacks.PGDL2}[norm]
    return [
        attack_class(DirectionOnlyLogits(model), eps=eps, alpha=params["step_size"],
                     steps=params["steps"], random_start=params["random_start"])(x, y)
        for eps in eps_list
    ]


# Craft functions that hand over to robbench's engine when ``uses_eot_engine(params)``.
ENGINE_WHEN_EOT = (fgsm, pgd_steps)


def within_budget(x, x_adv, eps_list, norm) -> list[torch.Tensor]:
    """Minimal-perturbation attacks: keep x_adv where its norm is within eps, else the clean x."""
    norms = perturbation_norms(x, x_adv, norm)
    shape = (-1, *([1] * (x.dim() - 1)))
    return [torch.where((norms <= eps).view(shape), x_adv, x) for eps in eps_list]


def cw(model, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    attack = torchattacks.CW(model, c=params["c"], kappa=params["kappa"], steps=params["steps"],
                             lr=params["lr"])
    return within_budget(x, attack(x, y), eps_list, norm)


def apgd(model, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    return [
        torchattacks.APGD(model, norm="Linf" if norm == "linf" else "L2", eps=eps,
                          steps=params["steps"], n_restarts=params["restarts"],
                          eot_iter=params["eot"], loss=params["loss"], seed=params["seed"])(x, y)
        for eps in eps_list
    ]


def autoattack_rand(model, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """AutoAttack's version for randomised defenses: APGD-CE, then APGD-DLR on the survivors,
    one restart each, as ``torchattacks.AutoAttack(version='rand')`` builds it, but with the EOT
    draws and steps taken from ``params`` so that the recorded values are the ones that ran.
    (torchattacks runs 10 steps; the reference implementation, and robbench's default, 100.)"""
    lp = "Linf" if norm == "linf" else "L2"
    return [
        torchattacks.MultiAttack([
            torchattacks.APGD(model, norm=lp, eps=eps, steps=params["steps"], n_restarts=1,
                              eot_iter=params["eot"], loss=loss, seed=params["seed"])
            for loss in ("ce", "dlr")
        ])(x, y)
        for eps in eps_list
    ]


def square(model, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    return [
        torchattacks.Square(model, norm="Linf" if norm == "linf" else "L2", eps=eps,
                            n_queries=params["n_queries"], n_restarts=params["restarts"],
                            seed=params["seed"])(x, y)
        for eps in eps_list
    ]
