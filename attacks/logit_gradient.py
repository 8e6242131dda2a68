"""Logits for attacks that use only the direction of each example's gradient."""

from __future__ import annotations

import torch
from torch import nn


def unit_peak(grad: torch.Tensor, draws: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``grad`` divided by each example's largest absolute entry, and those divisors (1 where
    the gradient is all zero). Rows m * N + i (m < ``draws``) are draws of example i and share
    its divisor, so rescaling keeps their weights relative to each other."""
    rows = grad.reshape(draws, -1, *grad.shape[1:])
    peak = rows.abs().flatten(2).amax(2).amax(0)
    peak = torch.where(peak > 0, peak, torch.ones_like(peak))
    return (rows / peak.view(1, -1, *([1] * (grad.dim() - 1)))).view_as(grad), peak


class _DirectionOnlyGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor) -> torch.Tensor:
        ctx.dtype = logits.dtype
        return logits.double()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return unit_peak(grad)[0].to(ctx.dtype)


class DirectionOnlyLogits(nn.Module):
    """``model`` with float64 logits whose gradient reaches the model rescaled, per example, to a
    largest entry of 1.

    FGSM, PGD and PGD-L2 step along sign(grad) or grad / ||grad||: only the direction of each
    example's input gradient counts. torchattacks averages the cross-entropy of float32 logits
    over the batch (foolbox sums it), so a confident example's gradient underflows or falls
    under PGD-L2's 1e-10 guard, and the attack weakens, by an amount that depends on the batch
    size (the MNIST ConvNet's robust accuracy under FGSM and PGD-L2 was overstated by many
    points). The backward runs in float64, where softmax saturates only at logit margins beyond
    about 700.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _DirectionOnlyGradient.apply(self.model(x))
