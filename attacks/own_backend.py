"""robbench's own attacks behind the registry's craft-function interface (the default backend).

Each function takes (target, x, y, eps_list, norm, params) and returns one adversarial batch
per eps. All run on robbench's engine: float64 losses, EOT draws folded into one batched pass
through the model, the best iterate of a random model kept per example.
"""

from __future__ import annotations

import warnings

import torch

from robbench.attacks.apgd import apgd as apgd_attack
from robbench.attacks.apgd import apgd_targeted
from robbench.attacks.autoattack import autoattack_rand as autoattack_rand_attack
from robbench.attacks.autoattack import autoattack_standard
from robbench.attacks.cw import cw_l2
from robbench.attacks.eot import LOSSES
from robbench.attacks.fab import fab_targeted
from robbench.attacks.pgd import pgd
from robbench.attacks.square import square as square_attack
from robbench.attacks.target import Target


def pgd_steps(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """PGD (Madry et al. 2018) at L-inf or L2 with batched EOT and restarts; on a random model
    each example keeps its best iterate unless ``best_iterate`` is False."""
    return [
        pgd(target, x, y, eps=eps, norm=norm, steps=params["steps"],
            step_size=params["step_size"], random_start=params.get("random_start", True),
            eot=params.get("eot", 1), restarts=params.get("restarts", 1),
            loss_fn=LOSSES[params.get("loss", "ce")], max_batch=params.get("max_batch"),
            stochastic=target.stochastic and params.get("best_iterate", True))
        for eps in eps_list
    ]


def fgsm(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """FGSM (Goodfellow et al. 2015): one signed-gradient step of size eps, no random start."""
    return [
        pgd(target, x, y, eps=eps, norm=norm, steps=1, step_size=eps, random_start=False,
            eot=params.get("eot", 1), loss_fn=LOSSES[params.get("loss", "ce")],
            max_batch=params.get("max_batch"))  # one step: no iterate to choose among
        for eps in eps_list
    ]


def cw(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """Carlini & Wagner (2017) L2 with its binary search over c; robust at eps if no adversarial
    example lies within it."""
    return cw_l2(target, x, y, eps_list, c=params["c"], search_steps=params["search_steps"],
                 kappa=params["kappa"], steps=params["steps"], lr=params["lr"],
                 eot=params.get("eot", 1),
                 stochastic=target.stochastic, max_batch=params.get("max_batch"))


def apgd(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """APGD (Croce & Hein 2020) with the CE or DLR loss, EOT draws in one batched pass."""
    return [apgd_attack(target, x, y, eps=eps, norm=norm, steps=params["steps"],
                        loss=params.get("loss", "ce"), eot=params.get("eot", 1),
                        restarts=params.get("restarts", 1), stochastic=target.stochastic,
                        max_batch=params.get("max_batch"), large_eps=params.get("large_eps", False))
            for eps in eps_list]


def apgd_t(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """APGD-T (Croce & Hein 2020): the targeted DLR loss towards each runner-up class in turn."""
    return [apgd_targeted(target, x, y, eps=eps, norm=norm, steps=params["steps"],
                          targets=params["targets"], eot=params.get("eot", 1),
                          restarts=params.get("restarts", 1), stochastic=target.stochastic,
                          max_batch=params.get("max_batch"))
            for eps in eps_list]


def fab_t(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """FAB-T (Croce & Hein 2020): minimal-norm targeted boundary attack, kept within eps."""
    return [fab_targeted(target, x, y, eps=eps, norm=norm, steps=params["steps"],
                         targets=params["targets"], eot=params.get("eot", 1),
                         stochastic=target.stochastic, max_batch=params.get("max_batch"))
            for eps in eps_list]


RAND_VERSION_NOTE = ("autoattack on a random model: AutoAttack's authors quote the 'rand' "
                     "version (autoattack-rand) for randomised defenses")


def autoattack(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """AutoAttack's standard version (APGD-CE, APGD-T, FAB-T, Square) on the survivors; a random
    model gets EOT draws and a warning that the 'rand' version is the one to quote."""
    if target.stochastic:
        warnings.warn(RAND_VERSION_NOTE, stacklevel=2)
    return [autoattack_standard(target, x, y, eps=eps, norm=norm, steps=params["steps"],
                                targets=params["targets"], n_queries=params["n_queries"],
                                eot=params.get("eot", 1), stochastic=target.stochastic,
                                max_batch=params.get("max_batch"))
            for eps in eps_list]


def autoattack_rand(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """AutoAttack's version for randomised defenses: APGD-CE, then APGD-DLR, EOT draws."""
    return [autoattack_rand_attack(target, x, y, eps=eps, norm=norm, steps=params["steps"],
                                   eot=params.get("eot", 20), stochastic=target.stochastic,
                                   max_batch=params.get("max_batch"))
            for eps in eps_list]


def square(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """Square (Andriushchenko et al. 2020): random search on loss queries only."""
    return [square_attack(target, x, y, eps=eps, norm=norm, n_queries=params["n_queries"],
                          eot=params.get("eot", 1), restarts=params.get("restarts", 1),
                          stochastic=target.stochastic, max_batch=params.get("max_batch"))
            for eps in eps_list]
