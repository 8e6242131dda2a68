"""Carlini-Wagner L2 (Carlini & Wagner 2017) with batched EOT, scored within L2 budgets.

"Towards evaluating the robustness of neural networks" (IEEE S&P 2017): Adam on w in tanh space,
x' = (tanh(w) + 1) / 2, minimising ||x' - x||_2^2 + c * max(z_y - max_{i != y} z_i, -kappa).
The constant c is found per example by the paper's binary search: ``search_steps`` (9) runs
from c = 1e-3, each from the clean image with a fresh optimiser; after a run that found an
adversarial example c moves halfway down towards the last failure, after one that did not it
moves halfway up towards the last success, or grows tenfold while none has succeeded. A run
aborts early when its objective has fallen by less than 0.01% over a tenth of its steps. The
paper runs up to 10,000 steps per search step; robbench's default is 1,000 (``steps``). For a
stochastic model the margin term is the mean over ``eot`` draws folded into one batch, and a
run succeeds for an example when more than half of an iterate's draws misclassify it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from robbench.attacks.eot import attack_score, margin_loss, rows_per_pass
from robbench.attacks.threat_model import perturbation_norms

Model = Callable[[torch.Tensor], torch.Tensor]

# C&W's reference code maps x to arctanh((2x - 1) * 0.999999), so that pixels at 0 or 1 start
# at a finite w.
TANH_SHRINK = 0.999999


def _tanh_space(w: torch.Tensor) -> torch.Tensor:
    return (torch.tanh(w) + 1) / 2


def _margin_pass(
    model: Model,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    *,
    eot: int,
    c: torch.Tensor,
    kappa: float,
    max_batch: int | None,
    with_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Mean over ``eot`` draws of the CW margin loss (best wrong minus true logit), the fraction
    of draws misclassified, and d/dx' of c * mean_draws max(z_y - max_{i != y} z_i, -kappa)
    summed over examples (None without grad). Draws are rows m * N + i; ``max_batch`` caps the
    rows per pass as in ``eot_loss_grad``."""
    n = x_adv.shape[0]
    cap = rows_per_pass(x_adv, max_batch)
    draws_per_pass = eot if cap is None else max(1, min(eot, cap // max(n, 1)))
    span = n if cap is None else max(1, min(n, cap))
    margin = torch.zeros(n, device=x_adv.device)
    fooled = torch.zeros(n, device=x_adv.device)
    grad = torch.zeros_like(x_adv) if with_grad else None
    done = 0
    while done < eot:
        m = min(draws_per_pass, eot - done)
        for lo in range(0, n, span):
            part = slice(lo, lo + span)
            xv = x_adv[part].detach().clone().requires_grad_(with_grad)
            ys = y[part].repeat(m)
            with torch.set_grad_enabled(with_grad):
                logits = model(xv.repeat(m, *([1] * (x_adv.dim() - 1))))
                wrong_margin = margin_loss(logits, ys)
                if with_grad:
                    hinge = torch.clamp(-wrong_margin, min=-kappa)
                    objective = (c[part].repeat(m) * hinge).sum() / eot
                    grad[part] += torch.autograd.grad(objective, xv)[0]
            margin[part] += wrong_margin.detach().view(m, -1).sum(0)
            fooled[part] += (logits.detach().argmax(1) != ys).view(m, -1).float().sum(0)
        done += m
    return margin / eot, fooled / eot, grad


def cw_l2(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    eps_list: Sequence[float],
    *,
    c: float = 1e-3,
    search_steps: int = 9,
    kappa: float = 0.0,
    steps: int = 1000,
    lr: float = 0.01,
    eot: int = 1,
    stochastic: bool = False,
    max_batch: int | None = None,
    abort_early: bool = True,
) -> list[torch.Tensor]:
    """Carlini-Wagner L2 (Carlini & Wagner 2017), one tensor per eps in ``eps_list``, with the
    binary search over c (``search_steps`` runs from c; one run is CW at that constant).

    Every iterate of every run (the point each Adam step starts from, and the final one) is
    scored by the EOT pass that takes its gradient (a no-grad pass for the final one). Per eps
    each example keeps its best iterate by ``attack_score`` (fraction of draws misclassified,
    then the margin) among those within L2 norm eps that fool at least one draw; where none
    does it keeps the clean image (robust: no adversarial example found within eps). A
    deterministic model thus returns a misclassified iterate within eps wherever one was
    found; a stochastic model returns the iterate within eps that fooled the largest fraction
    of its draws.
    """
    shape = (-1, *([1] * (x.dim() - 1)))
    best = [x.clone() for _ in eps_list]
    best_score = [torch.full((x.shape[0],), -float("inf"), device=x.device) for _ in eps_list]

    def keep(candidate: torch.Tensor, margin: torch.Tensor, fooled: torch.Tensor) -> None:
        norms = perturbation_norms(x, candidate, "l2")
        score = attack_score(margin, fooled)
        for k, eps in enumerate(eps_list):
            better = (norms <= eps) & (fooled > 0) & (score > best_score[k])
            best[k] = torch.where(better.view(shape), candidate, best[k])
            best_score[k] = torch.where(better, score, best_score[k])

    const = torch.full((x.shape[0],), float(c), dtype=x.dtype, device=x.device)
    lower, upper = torch.zeros_like(const), torch.full_like(const, NO_SUCCESS)
    pass_args = dict(eot=eot, kappa=kappa, max_batch=max_batch)
    for _ in range(search_steps):
        found = _one_constant(model, x, y, const, keep, steps=steps, lr=lr,
                              abort_early=abort_early, **pass_args)
        upper = torch.where(found, torch.minimum(upper, const), upper)
        lower = torch.where(found, lower, torch.maximum(lower, const))
        const = torch.where(upper < NO_SUCCESS, (lower + upper) / 2, const * 10)
    return [b.detach() for b in best]


NO_SUCCESS = 1e10
"""The binary search's upper bound on c before any run has succeeded (C&W's reference code)."""


def _one_constant(model: Model, x: torch.Tensor, y: torch.Tensor, const: torch.Tensor,
                  keep: Callable, *, steps: int, lr: float, abort_early: bool, eot: int,
                  kappa: float, max_batch: int | None) -> torch.Tensor:
    """One CW run at the per-example constants ``const`` from the clean image, every iterate
    offered to ``keep``; returns which examples it broke (margin >= kappa on more than half of
    an iterate's draws, on its one draw for eot = 1)."""
    w = torch.atanh((2 * x - 1).clamp(-1, 1) * TANH_SHRINK).detach().requires_grad_(True)
    optimizer = torch.optim.Adam([w], lr=lr)
    pass_args = dict(eot=eot, c=const, kappa=kappa, max_batch=max_batch)
    found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    check_every, last = max(steps // 10, 1), float("inf")

    def record(candidate, margin, fooled) -> None:
        keep(candidate, margin, fooled)
        found.copy_(found | ((fooled > 0.5 if eot > 1 else fooled > 0) & (margin >= kappa)))

    for k in range(steps):
        x_adv = _tanh_space(w)
        margin, fooled, grad = _margin_pass(model, x_adv, y, with_grad=True, **pass_args)
        record(x_adv.detach(), margin, fooled)
        if abort_early and k % check_every == 0:
            objective = (((x_adv.detach() - x) ** 2).flatten(1).sum(1)
                         + const * torch.clamp(-margin, min=-kappa)).sum().item()
            if objective > last * 0.9999:
                return found
            last = objective
        optimizer.zero_grad()
        # d/dw of ||x' - x||^2 + c * f(x'): the margin part's gradient reaches w through x'.
        x_adv.backward(2 * (x_adv.detach() - x) + grad)
        optimizer.step()
    with torch.no_grad():
        x_adv = _tanh_space(w)
    margin, fooled, _ = _margin_pass(model, x_adv, y, with_grad=False, **pass_args)
    record(x_adv, margin, fooled)
    return found
