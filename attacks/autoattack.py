"""AutoAttack's version for randomised defenses (Croce & Hein 2020) on robbench's own APGD."""

from __future__ import annotations

from collections.abc import Callable

import torch

from robbench.attacks.apgd import apgd
from robbench.attacks.eot import attack_score, eot_loss_grad, margin_loss


def autoattack_rand(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 100,
    eot: int = 20,
    stochastic: bool = True,
    max_batch: int | None = None,
) -> torch.Tensor:
    """AutoAttack 'rand' (Croce & Hein 2020) as the reference implementation runs it: APGD-CE,
    then APGD-DLR on the examples APGD-CE did not break, ``steps`` steps, EOT over ``eot`` draws
    and one restart each.

    "Broken" is judged by a fresh no-grad EOT pass of ``eot`` draws (more than half of them
    misclassified) for a stochastic model, by one pass for a deterministic one. Each example
    returns the better of its two candidates by ``attack_score`` (fresh EOT passes, margin loss
    as the tie-break, so that both candidates are scored on one scale).
    """
    draws = eot if stochastic else 1
    common = dict(eps=eps, norm=norm, steps=steps, eot=eot, restarts=1, stochastic=stochastic,
                  max_batch=max_batch)

    def measure(candidate: torch.Tensor, labels: torch.Tensor):
        loss, _, fooled = eot_loss_grad(model, candidate, labels, eot=draws, loss_fn=margin_loss,
                                        max_batch=max_batch, with_grad=False)
        return attack_score(loss, fooled), fooled

    best = apgd(model, x, y, loss="ce", **common)
    score, fooled = measure(best, y)
    rest = (fooled <= 0.5).nonzero().flatten()
    if len(rest) == 0:
        return best
    adv_dlr = apgd(model, x[rest], y[rest], loss="dlr", **common)
    score_dlr, _ = measure(adv_dlr, y[rest])
    better = score_dlr > score[rest]
    best[rest[better]] = adv_dlr[better]
    return best
