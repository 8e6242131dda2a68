"""APGD (Croce & Hein 2020) on robbench's batched-EOT engine.

Auto-PGD from "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks" (Croce & Hein, ICML 2020), Algorithm 1: a gradient step of size eta
(initially 2 eps) with momentum alpha, and at checkpoints w_j the step size halves and the
iterate restarts from the best point so far when the loss has stopped rising. Losses are taken
in float64 and only the direction of the EOT-mean gradient is used (``direction_only``).

Where the paper leaves a detail open robbench follows the reference implementation: the random
start (a uniform draw from the cube rescaled to the ball's surface, or a Gaussian direction at
L2), and the checkpoint's timing (right after iterate x^(w_j), whose w_j - w_{j-1} steps
condition 1 counts, so that the halved step already makes x^(w_j + 1); the paper's Algorithm 1
checks one step later). Condition 2 is the paper's at every checkpoint, the first included
(eta^(0) = eta^(w_1)); the reference skips it there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from fractions import Fraction

import torch

from robbench.attacks.apgd_l1 import l1_single_run
from robbench.attacks.eot import (
    LOSSES,
    LossFn,
    attack_score,
    eot_loss_grad,
    targeted_dlr_loss,
)
from robbench.attacks.pgd import project

NORMS = ("linf", "l2", "l1")
Run = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

Model = Callable[[torch.Tensor], torch.Tensor]


def apgd_checkpoints(steps: int) -> list[int]:
    """The checkpoints w_j = ceil(p_j N) of APGD for N = ``steps`` (Croce & Hein 2020, Sec. 3.2):
    p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), while p_j <= 1.

    The p_j are exact hundredths (kept as fractions, so ceil is exact)."""
    p = [Fraction(0), Fraction(22, 100)]
    while True:
        nxt = p[-1] + max(p[-1] - p[-2] - Fraction(3, 100), Fraction(6, 100))
        if nxt > 1:
            break
        p.append(nxt)
    return [math.ceil(pj * steps) for pj in p]


def _shape(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.view(-1, *([1] * (x.dim() - 1)))


def _start(x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """The reference implementation's random start: a uniform draw from the cube [-1, 1]^d
    (L-inf) or a Gaussian direction (L2), rescaled to norm eps, then clipped to [0, 1]."""
    if norm == "linf":
        t = 2 * torch.rand_like(x) - 1
        t = t / _shape(t.flatten(1).abs().amax(1).clamp_min(1e-12), x)
    else:
        t = torch.randn_like(x)
        t = t / _shape(t.flatten(1).norm(dim=1) + 1e-12, x)
    return (x + eps * t).clamp(0.0, 1.0)


def _direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return grad.sign()
    return grad / _shape(grad.flatten(1).norm(dim=1) + 1e-12, grad)


def _evaluator(model: Model, y: torch.Tensor, loss_fn: LossFn, eot: int,
               max_batch: int | None, targets: torch.Tensor | None):
    """evaluate(point, with_grad) -> (EOT-mean loss, gradient direction, fooled fraction)."""
    def evaluate(point: torch.Tensor, with_grad: bool = True):
        return eot_loss_grad(model, point, y, eot=eot, loss_fn=loss_fn, max_batch=max_batch,
                             with_grad=with_grad, direction_only=True, targets=targets)
    return evaluate


def _single_run(
    evaluate: Callable,
    x: torch.Tensor,
    eps: float,
    norm: str,
    steps: int,
    rho: float,
    alpha: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One APGD run (L-inf or L2): (best iterate by ``attack_score``, its score, its fraction of
    draws misclassified). Every iterate x^(0..N) is scored by the EOT pass that takes its
    gradient (the last one by a no-grad pass)."""
    n = x.shape[0]
    eps_t = torch.full((n,), eps, dtype=x.dtype, device=x.device)
    x_adv = _start(x, eps, norm)
    loss, grad, fooled = evaluate(x_adv, with_grad=steps > 0)
    best, best_score, best_fooled = x_adv.clone(), attack_score(loss, fooled), fooled.clone()
    x_max, f_max, grad_max = x_adv.clone(), loss.clone(), grad
    eta = _shape(torch.full((n,), 2.0 * eps, dtype=x.dtype, device=x.device), x)
    x_prev = x_adv
    # Window lengths by checkpoint; at small N two p_j can share a w_j (counted once), and a
    # checkpoint at N itself would act after the last iterate.
    checkpoints = sorted(set(apgd_checkpoints(steps)))
    checks = {w: w - prev for prev, w in zip(checkpoints, checkpoints[1:], strict=False)
              if w < steps}
    increases = torch.zeros(n, device=x.device)
    last_loss = loss
    f_max_at_check = f_max.clone()
    reduced_at_check = torch.zeros(n, dtype=torch.bool, device=x.device)
    for k in range(steps):
        a = 1.0 if k == 0 else alpha
        z = project(x, x_adv + eta * _direction(grad, norm), eps_t, norm)
        x_new = project(x, x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_prev), eps_t, norm)
        x_prev, x_adv = x_adv, x_new
        loss, grad, fooled = evaluate(x_adv, with_grad=k < steps - 1)
        score = attack_score(loss, fooled)
        better = score > best_score
        best[better], best_fooled[better] = x_adv[better], fooled[better]
        best_score = torch.where(better, score, best_score)
        increases += (loss > last_loss).float()
        last_loss = loss
        improved = loss > f_max
        x_max[improved], f_max[improved] = x_adv[improved], loss[improved]
        if grad is None:  # the last iterate: scored, no gradient, no checkpoint after it
            continue
        grad_max = torch.where(_shape(improved, x), grad, grad_max)
        window = checks.get(k + 1)
        if window is None:
            continue
        # Checkpoint w_j = k + 1 (iterate x^(w_j) just computed): condition 1, too few of the
        # window's steps raised the loss; condition 2, eta was not reduced at the previous
        # checkpoint and the best loss has not moved since it.
        cond1 = increases < rho * window
        cond2 = ~reduced_at_check & (f_max <= f_max_at_check)
        reduce = cond1 | cond2
        eta = torch.where(_shape(reduce, x), eta / 2, eta)
        x_adv = torch.where(_shape(reduce, x), x_max, x_adv)
        grad = torch.where(_shape(reduce, x), grad_max, grad)
        last_loss = torch.where(reduce, f_max, last_loss)
        reduced_at_check, f_max_at_check = reduce, f_max.clone()
        increases.zero_()
    return best, best_score, best_fooled


def best_over_runs(x: torch.Tensor, runs: Iterable[Run], stochastic: bool) -> torch.Tensor:
    """Each example's best candidate over ``runs`` (each maps example indices to (candidates,
    scores, fooled fractions)) by ``attack_score``. A deterministic model runs each only on the
    examples not yet fooled (as the reference does); a stochastic one runs all every time."""
    n = x.shape[0]
    best = x.clone()
    best_score = torch.full((n,), -float("inf"), device=x.device)
    fooled = torch.zeros(n, device=x.device)
    for run in runs:
        todo = torch.ones(n, dtype=torch.bool, device=x.device) if stochastic else fooled < 1
        idx = todo.nonzero().flatten()
        if len(idx) == 0:
            break
        adv, score, run_fooled = run(idx)
        better = score > best_score[idx]
        keep = idx[better]
        best[keep], best_score[keep], fooled[keep] = adv[better], score[better], run_fooled[better]
    return best


def _run(model: Model, x, y, eps, norm, steps, loss_fn, eot, max_batch, rho, alpha,
         large_eps, targets=None) -> Run:
    """One APGD run on the examples ``idx`` (at L1, :func:`l1_single_run`)."""
    def run(idx: torch.Tensor):
        chosen = None if targets is None else targets[idx]
        evaluate = _evaluator(model, y[idx], loss_fn, eot, max_batch, chosen)
        if norm == "l1":
            return l1_single_run(evaluate, x[idx], eps, steps, large_eps)
        return _single_run(evaluate, x[idx], eps, norm, steps, rho, alpha)
    return run


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm {norm!r} is unknown; allowed: {', '.join(NORMS)}")


def apgd(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 100,
    loss: str = "ce",
    eot: int = 1,
    restarts: int = 1,
    stochastic: bool = False,
    max_batch: int | None = None,
    rho: float = 0.75,
    alpha: float = 0.75,
    large_eps: bool = False,
) -> torch.Tensor:
    """APGD-CE / APGD-DLR (Croce & Hein 2020) at L-inf or L2, and at L1 (Croce & Hein 2021,
    :mod:`robbench.attacks.apgd_l1`), with batched EOT over ``eot`` draws.

    Step size 2 eps, halved at the checkpoints ``apgd_checkpoints(steps)`` (then the iterate
    restarts from the max-loss point); momentum ``alpha`` from the second step. Each example
    returns its best iterate by ``attack_score`` (fraction of draws misclassified, then the
    loss): on a deterministic model an example misclassified at any iterate is returned
    misclassified. Restarts: a deterministic model reruns only the examples not yet fooled
    (as the reference does); a stochastic one reruns all and keeps each example's best.
    ``large_eps`` (L1 only): AutoAttack-L1's stages at 3 eps, 2 eps, eps.
    """
    _check_norm(norm)
    run = _run(model, x, y, eps, norm, steps, LOSSES[loss], eot, max_batch, rho, alpha,
               large_eps)
    return best_over_runs(x, [run] * restarts, stochastic)


def ranked_classes(model: Model, x: torch.Tensor, eot: int = 1,
                   max_batch: int | None = None) -> torch.Tensor:
    """Classes by mean logit over ``eot`` draws on ``x``, highest first (one row per example)."""
    step = max_batch or max(len(x), 1)
    with torch.no_grad():
        total = sum(torch.cat([model(x[lo:lo + step]) for lo in range(0, len(x), step)])
                    for _ in range(eot))
    return total.argsort(dim=1, descending=True)


def apgd_targeted(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 100,
    targets: int = 9,
    eot: int = 1,
    restarts: int = 1,
    stochastic: bool = False,
    max_batch: int | None = None,
    large_eps: bool = False,
) -> torch.Tensor:
    """APGD-T (Croce & Hein 2020, Sec. 4): APGD on the targeted DLR loss, once per target class,
    the ``targets`` runner-up classes of the clean input's (EOT-mean) logits in turn, each with
    ``restarts`` runs; same scoring and restart rule as :func:`apgd`."""
    _check_norm(norm)
    ranked = ranked_classes(model, x, eot, max_batch)
    runs = [_run(model, x, y, eps, norm, steps, targeted_dlr_loss, eot, max_batch, 0.75, 0.75,
                 large_eps, targets=ranked[:, k])
            for k in range(1, min(targets, ranked.shape[1] - 1) + 1) for _ in range(restarts)]
    return best_over_runs(x, runs, stochastic)
