"""APGD at L1 (Croce & Hein 2021, "Mind the box: l1-APGD for sparse adversarial attacks on image
classifiers", ICML 2021), on robbench's batched-EOT engine.

Each step moves along the signs of the largest k of the gradient's entries, an L1 step of size
eta spread evenly over them, then projects onto the L1 ball within the box
(:func:`~robbench.attacks.l1_ball.project_l1_box`). k adapts to the sparsity of the best point
so far: at every checkpoint (every 4% of the steps) k becomes a third less than that point's
number of perturbed pixels, and where that number fell by more than 5% the step size returns to
eps and the iterate restarts from the best point; elsewhere the step size shrinks by 1.5, never
below eps / 10. The paper starts from a random point and initial k = 20% of the pixels.

AutoAttack's L1 version runs it with growing-budget stages (``large_eps``): 30% of the steps at
3 eps, 30% at 2 eps, 40% at eps, each stage starting from the previous stage's best point
projected onto the smaller ball; only the last stage's iterates, within eps, are candidates.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from robbench.attacks.eot import attack_score
from robbench.attacks.l1_ball import project_l1_box

Evaluate = Callable[[torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]
STAGES = ((3.0, 0.3), (2.0, 0.3), (1.0, 0.4))
"""AutoAttack-L1's budget stages: (multiple of eps, share of the steps)."""


def _shape(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.view(-1, *([1] * (x.dim() - 1)))


def _sparsity(delta: torch.Tensor) -> torch.Tensor:
    return (delta.flatten(1) != 0).sum(1).double()


def _sparse_step(grad: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """sign(grad) on the ``keep`` (fraction per example) largest |grad| entries, scaled to L1
    norm 1."""
    flat = grad.flatten(1)
    d = flat.shape[1]
    ranked = flat.abs().sort(dim=1).values
    index = ((1.0 - keep) * d).clamp(0, d - 1).long()
    threshold = ranked.gather(1, index[:, None])
    signs = flat.sign() * (flat.abs() >= threshold)
    return (signs / (signs.abs().sum(1, keepdim=True) + 1e-10)).view_as(grad)


def _stage(evaluate: Evaluate, x: torch.Tensor, start: torch.Tensor, eps: float, steps: int,
           fresh: bool, scored: bool):
    """One run of ``steps`` steps at ``eps`` from ``start``: (max-loss point, best iterate by
    ``attack_score`` and its score and fooled fraction, or Nones unless ``scored``)."""
    n, pixels = x.shape[0], x[0].numel()
    x_adv = project_l1_box(x, start, eps)
    loss, grad, fooled = evaluate(x_adv, steps > 0)
    best, best_score, best_fooled = x_adv.clone(), attack_score(loss, fooled), fooled.clone()
    x_max, f_max, grad_max = x_adv.clone(), loss.clone(), grad
    if fresh:
        keep, sparsity_old = torch.full((n,), 0.2, dtype=torch.float64), torch.full(
            (n,), float(pixels), dtype=torch.float64)
    else:
        sparsity_old = _sparsity(x_adv - x)
        keep = sparsity_old / pixels / 1.5
    keep, sparsity_old = keep.to(x.device), sparsity_old.to(x.device)
    eta = torch.full((n,), eps, dtype=x.dtype, device=x.device)
    every = max(int(0.04 * steps), 1)
    for k in range(steps):
        x_adv = project_l1_box(x, x_adv + _shape(eta, x) * _sparse_step(grad, keep), eps)
        loss, grad, fooled = evaluate(x_adv, k < steps - 1)
        score = attack_score(loss, fooled)
        better = score > best_score
        best[better], best_fooled[better] = x_adv[better], fooled[better]
        best_score = torch.where(better, score, best_score)
        improved = loss > f_max
        x_max[improved], f_max[improved] = x_adv[improved], loss[improved]
        if grad is None:
            continue
        grad_max = torch.where(_shape(improved, x), grad, grad_max)
        if (k + 1) % every:
            continue
        sparsity = _sparsity(x_max - x)
        sparser = sparsity / sparsity_old < 0.95
        keep, sparsity_old = sparsity / pixels / 1.5, sparsity
        eta = torch.where(sparser, torch.full_like(eta, eps), eta / 1.5).clamp(eps / 10, eps)
        x_adv = torch.where(_shape(sparser, x), x_max, x_adv)
        grad = torch.where(_shape(sparser, x), grad_max, grad)
    if not scored:
        return x_max, None, None, None
    return x_max, best, best_score, best_fooled


def l1_single_run(evaluate: Evaluate, x: torch.Tensor, eps: float, steps: int,
                  large_eps: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One APGD-L1 run: (best iterate within eps by ``attack_score``, its score, its fraction
    of draws misclassified). ``evaluate(point, with_grad)`` returns (loss, direction, fooled)."""
    noise = x + torch.randn_like(x)
    if not large_eps:
        _, best, score, fooled = _stage(evaluate, x, noise, eps, steps, True, True)
        return best, score, fooled
    counts = [math.ceil(share * steps) for _, share in STAGES[:-1]]
    counts.append(steps - sum(counts))
    point = project_l1_box(x, noise, STAGES[0][0] * eps)
    for (factor, _), count in zip(STAGES, counts, strict=True):
        last = factor == 1.0
        point, best, score, fooled = _stage(evaluate, x, point, factor * eps, count, False, last)
    return best, score, fooled
