"""Attacks through foolbox 3 (the optional extra ``robbench[foolbox]``): FGSM, PGD (L-inf, L2)
and CW-L2, all eps in one foolbox call; a cross-check of robbench's own implementations.

Settings follow robbench's: PGD uses the absolute step size ``step_size`` and a uniform random
start in the eps-ball, FGSM one step of size eps; cross-entropy on the logits. A random model
is wrapped by :class:`EOTLogProb` (the log of the mean softmax over M noise draws folded into
the batch), so foolbox's gradient is that of the expected prediction.
"""

from __future__ import annotations

from typing import Any

import foolbox as fb
import torch
from torch import nn

from robbench.attacks.logit_gradient import DirectionOnlyLogits
from robbench.attacks.target import Target
from robbench.attacks.threat_model import within_budget


class EOTLogProb(nn.Module):
    """log E_noise[softmax(model(x))] over ``eot`` draws, one batched pass (rows m * N + i)."""

    def __init__(self, model: nn.Module, eot: int) -> None:
        super().__init__()
        self.model = model
        self.eot = eot

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        logits = self.model(x.repeat(self.eot, *([1] * (x.dim() - 1))))
        logp = torch.log_softmax(logits, dim=1).view(self.eot, n, -1)
        return torch.logsumexp(logp, dim=0) - torch.log(torch.tensor(float(self.eot)))


def _fmodel(target: Target, x: torch.Tensor, params: dict[str, Any],
            direction_only: bool = False):
    if params.get("restarts", 1) > 1:
        raise ValueError("the foolbox backend runs one restart; use --backend robbench for "
                         "--restarts")
    if params.get("loss", "ce") != "ce":
        raise ValueError("the foolbox backend attacks cross-entropy only; use --backend "
                         "robbench for --loss margin")
    eot = params.get("eot", 1)
    net = EOTLogProb(target.model, eot) if target.stochastic and eot > 1 else target.model
    net = DirectionOnlyLogits(net) if direction_only else net
    net.eval()
    return fb.PyTorchModel(net, bounds=(0.0, 1.0), device=x.device)


def _run(attack, target, x, y, eps_list, params) -> list[torch.Tensor]:
    """FGSM and PGD: steps along the gradient's sign or direction (see DirectionOnlyLogits)."""
    fmodel = _fmodel(target, x, params, direction_only=True)
    _, clipped, _ = attack(fmodel, x, y, epsilons=list(eps_list))
    return [c.detach() for c in clipped]


def fgsm(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """foolbox ``FGSM`` (L-inf fast gradient, no random start), every eps in one call."""
    return _run(fb.attacks.FGSM(), target, x, y, eps_list, params)


def pgd_steps(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """foolbox ``LinfPGD`` or ``L2PGD``, by ``norm``, with robbench's absolute step size."""
    attack_class = {"linf": fb.attacks.LinfPGD, "l2": fb.attacks.L2PGD}[norm]
    attack = attack_class(abs_stepsize=params["step_size"], steps=params["steps"],
                          random_start=params["random_start"])
    return _run(attack, target, x, y, eps_list, params)


def cw(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """foolbox ``L2CarliniWagnerAttack`` with the binary search over c (``search_steps`` from
    ``c``, early abort); the minimal perturbation is kept where its L2 norm is within eps, else
    the clean image."""
    attack = fb.attacks.L2CarliniWagnerAttack(
        binary_search_steps=params["search_steps"], steps=params["steps"],
        stepsize=params["lr"], confidence=params["kappa"], initial_const=params["c"],
        abort_early=params["search_steps"] > 1)
    raw, _, _ = attack(_fmodel(target, x, params), x, y, epsilons=None)
    return within_budget(x, raw.detach(), eps_list, norm)
