"""Carlini-Wagner L2 (Carlini & Wagner 2017) with batched EOT, scored within L2 budgets.

"Towards evaluating the robustness of neural networks" (IEEE S&P 2017): Adam on w in tanh space,
x' = (tanh(w) + 1) / 2, minimising ||x' - x||_2^2 + c * max(z_y - max_{i != y} z_i, -kappa) for
one constant c (no binary search, as robbench's CW is defined). For a stochastic model the
margin term is the mean over ``eot`` draws folded into one batch.
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
    c: float,
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
                    objective = c * torch.clamp(-wrong_margin, min=-kappa).sum() / eot
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
    c: float = 1.0,
    kappa: float = 0.0,
    steps: int = 100,
    lr: float = 0.01,
    eot: int = 1,
    stochastic: bool = False,
    max_batch: int | None = None,
) -> list[torch.Tensor]:
    """Carlini-Wagner L2 (Carlini & Wagner 2017), one tensor per eps in ``eps_list``.

    Every iterate (the point each Adam step starts from, and the final one) is scored by the
    EOT pass that takes its gradient (a no-grad pass for the final one). Per eps each example
    keeps its best iterate by ``attack_score`` (fraction of draws misclassified, then the
    margin) among those within L2 norm eps that fool at least one draw; where none does it
    keeps the clean image (robust: no adversarial example found within eps). A deterministic
    model thus returns a misclassified iterate within eps wherever one was found; a stochastic
    model returns the iterate within eps that fooled the largest fraction of its draws.
    """
    shape = (-1, *([1] * (x.dim() - 1)))
    w = torch.atanh((2 * x - 1).clamp(-1, 1) * TANH_SHRINK).detach().requires_grad_(True)
    optimizer = torch.optim.Adam([w], lr=lr)
    best = [x.clone() for _ in eps_list]
    best_score = [torch.full((x.shape[0],), -float("inf"), device=x.device) for _ in eps_list]

    def keep(candidate: torch.Tensor, margin: torch.Tensor, fooled: torch.Tensor) -> None:
        norms = perturbation_norms(x, candidate, "l2")
        score = attack_score(margin, fooled)
        for k, eps in enumerate(eps_list):
            better = (norms <= eps) & (fooled > 0) & (score > best_score[k])
            best[k] = torch.where(better.view(shape), candidate, best[k])
            best_score[k] = torch.where(better, score, best_score[k])

    pass_args = dict(eot=eot, c=c, kappa=kappa, max_batch=max_batch)
    for _ in range(steps):
        x_adv = _tanh_space(w)
        margin, fooled, grad = _margin_pass(model, x_adv, y, with_grad=True, **pass_args)
        keep(x_adv.detach(), margin, fooled)
        optimizer.zero_grad()
        # d/dw of ||x' - x||^2 + c * f(x'): the margin part's gradient reaches w through x'.
        x_adv.backward(2 * (x_adv.detach() - x) + grad)
        optimizer.step()
    with torch.no_grad():
        x_adv = _tanh_space(w)
    margin, fooled, _ = _margin_pass(model, x_adv, y, with_grad=False, **pass_args)
    keep(x_adv, margin, fooled)
    return [b.detach() for b in best]
