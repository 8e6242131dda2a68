"""Batched expectation over transformation (EOT) through the stochastic Langevin chain.

The M noise draws of one gradient are folded into the batch (the batch repeated M times), so
one forward and one backward pass through the unrolled chain give the mean gradient; chunks of
draws bound the memory when M x N is large.

On a CPU the chunks are bounded by default: at most ``CPU_PIXEL_ROWS`` rows x pixels per pass,
since the unrolled chain's autograd graph grows with both, and one huge pass is slower on a CPU
as well as larger (``python -m robbench.eot_memory`` measures both:
results/perf/eot_memory_cpu.md). GPUs are not capped: there an out-of-memory is an error, and
the committed GPU runs used one pass.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from robbench.attacks.logit_gradient import unit_peak

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy (the attack maximises it)."""
    return nn.functional.cross_entropy(logits, y, reduction="none")


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example CW margin: best wrong logit minus the true logit (positive = misclassified)."""
    true = logits.gather(1, y[:, None])[:, 0]
    others = logits.masked_fill(nn.functional.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return others.amax(1) - true


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example Difference of Logits Ratio loss (Croce & Hein 2020), which the attack
    maximises: -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12), with z_pi1 >= z_pi2 >= ...
    the sorted logits (at least 3 classes). Invariant to shifting and rescaling the logits."""
    ranked = logits.sort(dim=1, descending=True).values
    return margin_loss(logits, y) / (ranked[:, 0] - ranked[:, 2] + 1e-12)


LOSSES: dict[str, LossFn] = {"ce": cross_entropy_loss, "margin": margin_loss, "dlr": dlr_loss}


def targeted_dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor
                      ) -> torch.Tensor:
    """Per-example targeted DLR loss (Croce & Hein 2020, Sec. 3.2), which APGD-T maximises:
    -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12) for target class t (at least 4
    classes). Invariant to shifting and rescaling the logits."""
    ranked = logits.sort(dim=1, descending=True).values
    gap = logits.gather(1, target[:, None])[:, 0] - logits.gather(1, y[:, None])[:, 0]
    return gap / (ranked[:, 0] - (ranked[:, 2] + ranked[:, 3]) / 2 + 1e-12)


def targeted_margin(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor
                    ) -> torch.Tensor:
    """z_t - z_y per example: the decision function between the true class and the target
    (positive once the target outranks the true class), which FAB-T linearises."""
    return logits.gather(1, target[:, None])[:, 0] - logits.gather(1, y[:, None])[:, 0]


def attack_score(loss: torch.Tensor, fooled: torch.Tensor) -> torch.Tensor:
    """Per-example score of an adversarial candidate measured by one EOT pass: the fraction of
    draws misclassified, ties broken by the mean loss (lexicographic while eot < 500). Attacks
    that keep a best restart or a best iterate compare candidates by it."""
    return fooled + 1e-3 * torch.tanh(loss)

CPU_PIXEL_ROWS = 2**19


def rows_per_pass(x: torch.Tensor, max_batch: int | None) -> int | None:
    """The cap on rows per pass for inputs like ``x``: ``max_batch`` if given, else on a CPU
    ``CPU_PIXEL_ROWS`` divided by the pixels of one input, else (GPU) none."""
    if max_batch is not None:
        return max_batch
    if x.device.type == "cpu":
        return max(1, CPU_PIXEL_ROWS // x.shape[1:].numel())
    return None


def eot_loss_grad(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eot: int = 1,
    loss_fn: LossFn = cross_entropy_loss,
    max_batch: int | None = None,
    with_grad: bool = True,
    direction_only: bool = False,
    targets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Mean over ``eot`` noise draws of the per-example loss and of its input gradient.

    Returns (loss, grad, fooled): loss and the fraction of draws misclassified per example, and
    d loss / d x (None when ``with_grad`` is False). Draws are rows m * N + i of one batch;
    ``max_batch`` caps the rows per pass (default: ``rows_per_pass``). A pass holds at least
    one draw of all N examples, and the draws fall into passes differently under different
    caps, so the cap is part of what makes a run reproducible.

    With ``direction_only`` (for attacks that step along sign(grad) or grad / ||grad||), grad
    is the mean gradient's direction, scaled per example to a largest entry of 1: the loss is
    taken in float64 and its gradient reaches the model rescaled per example, with one factor
    for all of an example's draws, so that neither a saturated float32 softmax nor float32
    underflow in the backward zeroes the step, and the draws keep their weights in the mean.

    ``targets`` (one class per example) go to a targeted loss as its third argument.
    """
    n = x.shape[0]
    cap = rows_per_pass(x, max_batch)
    draws_per_pass = eot if cap is None else max(1, min(eot, cap // max(n, 1)))
    span = n if cap is None else max(1, min(n, cap))
    loss_sum = torch.zeros(n, device=x.device)
    fooled = torch.zeros(n, device=x.device)
    wide = direction_only and with_grad
    grad = torch.zeros_like(x, dtype=torch.float64 if wide else x.dtype)
    done = 0
    while done < eot:
        m = min(draws_per_pass, eot - done)
        for lo in range(0, n, span):
            part = slice(lo, lo + span)
            fn = loss_fn if targets is None else partial(loss_fn, target=targets[part].repeat(m))
            losses, wrong, g = _draws_pass(model, x[part], y[part], m, fn, with_grad, wide)
            loss_sum[part] += losses
            fooled[part] += wrong
            if g is not None:
                grad[part] += g
        done += m
    if not with_grad:
        return loss_sum / eot, None, fooled / eot
    if wide:
        return loss_sum / eot, unit_peak(grad)[0].to(x.dtype), fooled / eot
    return loss_sum / eot, grad / eot, fooled / eot


def _draws_pass(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    m: int,
    loss_fn: LossFn,
    with_grad: bool,
    wide: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One pass of m draws of x: per example, the summed loss, the number of misclassified
    draws, and the summed input gradient (float64 and rescaled when ``wide``; None without
    grad)."""
    xv = x.detach().clone().requires_grad_(with_grad)
    ys = y.repeat(m)
    g = None
    with torch.set_grad_enabled(with_grad):
        logits = model(xv.repeat(m, 1, 1, 1))
        if wide:
            losses, grad_out, scale = _unit_output_grad(logits, ys, loss_fn, m)
            scale = scale.view(-1, *([1] * (x.dim() - 1)))
            g = torch.autograd.grad(logits, xv, grad_out)[0].double() * scale
        else:
            losses = loss_fn(logits, ys).view(m, -1)
            if with_grad:
                g = torch.autograd.grad(losses.sum(), xv)[0]
    wrong = (logits.detach().argmax(1) != ys).view(m, -1).float().sum(0)
    return losses.detach().sum(0), wrong, g


def _unit_output_grad(
    outputs: torch.Tensor, y: torch.Tensor, loss_fn: LossFn, draws: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-draw loss as (draws, N), d loss / d outputs divided per example by ``unit_peak``,
    those divisors): loss and gradient in float64, the gradient then representable in the
    outputs' dtype."""
    wide = outputs.detach().double().requires_grad_(True)
    with torch.enable_grad():
        losses = loss_fn(wide, y)
        (g,) = torch.autograd.grad(losses.sum(), wide)
    grad_out, scale = unit_peak(g, draws)
    return losses.detach().to(outputs.dtype).view(draws, -1), grad_out.to(outputs.dtype), scale
