"""AutoAttack (Croce & Hein 2020) on robbench's own attacks: the standard version and the
version for randomised defenses, each attack run on the survivors of the ones before it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from robbench.attacks.apgd import apgd, apgd_targeted
from robbench.attacks.eot import attack_score, eot_loss_grad, margin_loss
from robbench.attacks.fab import fab_targeted
from robbench.attacks.square import square

Model = Callable[[torch.Tensor], torch.Tensor]
Stage = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def on_survivors(model: Model, x: torch.Tensor, y: torch.Tensor, stages: Sequence[Stage], *,
                 draws: int, max_batch: int | None) -> torch.Tensor:
    """Run ``stages`` (each maps (x, y) to adversarial candidates) in turn, each on the
    examples none before it broke. "Broken" is judged by a fresh no-grad pass of ``draws``
    draws (more than half misclassified; one pass for a deterministic model). Each example
    returns its best candidate by ``attack_score`` (fresh passes, margin loss as the tie-break,
    so that the stages' candidates are scored on one scale)."""

    def measure(candidate: torch.Tensor, labels: torch.Tensor):
        loss, _, fooled = eot_loss_grad(model, candidate, labels, eot=draws, loss_fn=margin_loss,
                                        max_batch=max_batch, with_grad=False)
        return attack_score(loss, fooled), fooled

    best = x.clone()
    score = torch.full((x.shape[0],), -float("inf"), device=x.device)
    fooled = torch.zeros(x.shape[0], device=x.device)
    for stage in stages:
        rest = (fooled <= 0.5).nonzero().flatten()
        if len(rest) == 0:
            break
        candidate = stage(x[rest], y[rest])
        new_score, new_fooled = measure(candidate, y[rest])
        better = new_score > score[rest]
        keep = rest[better]
        best[keep], score[keep], fooled[keep] = (candidate[better], new_score[better],
                                                 new_fooled[better])
    return best


def autoattack_rand(
    model: Model,
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
    and one restart each (judged and scored as in :func:`on_survivors`)."""
    common = dict(eps=eps, norm=norm, steps=steps, eot=eot, restarts=1, stochastic=stochastic,
                  max_batch=max_batch)
    stages = [lambda a, b, loss=loss: apgd(model, a, b, loss=loss, **common)
              for loss in ("ce", "dlr")]
    return on_survivors(model, x, y, stages, draws=eot if stochastic else 1, max_batch=max_batch)


def autoattack_standard(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 100,
    targets: int = 9,
    n_queries: int = 5000,
    eot: int = 1,
    stochastic: bool = False,
    max_batch: int | None = None,
) -> torch.Tensor:
    """AutoAttack's standard version (Croce & Hein 2020): APGD-CE (one run), APGD-T and FAB-T
    (``targets`` runner-up classes, one run each, ``steps`` steps) and Square (``n_queries``),
    each on the survivors of the ones before; Square's p schedule is not rescaled to
    its budget, as the reference's standard version runs it.

    At L1 (Croce & Hein 2021) APGD-CE runs 5 restarts and APGD-T 5 targets, both with the
    growing-budget stages, then FAB-T; robbench has no L1 Square, so the L1 version ends there.
    EOT draws (``eot``) go to every attack and to the survivors' judgement on a random model.
    """
    common = dict(eps=eps, norm=norm, eot=eot, stochastic=stochastic, max_batch=max_batch)
    l1 = norm == "l1"
    stages: list[Stage] = [
        lambda a, b: apgd(model, a, b, steps=steps, loss="ce", restarts=5 if l1 else 1,
                          large_eps=l1, **common),
        lambda a, b: apgd_targeted(model, a, b, steps=steps, targets=min(targets, 5) if l1
                                   else targets, large_eps=l1, **common),
        lambda a, b: fab_targeted(model, a, b, steps=steps, targets=targets, **common),
    ]
    if not l1:
        stages.append(lambda a, b: square(model, a, b, n_queries=n_queries, rescaled=False,
                                             **common))
    return on_survivors(model, x, y, stages, draws=eot if stochastic else 1, max_batch=max_batch)
