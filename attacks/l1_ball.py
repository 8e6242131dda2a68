"""Euclidean projection onto the L1 ball intersected with the image box [0, 1].

APGD at L1 (Croce & Hein 2021, "Mind the box: l1-APGD for sparse adversarial attacks on image
classifiers", Sec. 3) projects each iterate onto {x' : ||x' - x||_1 <= eps, 0 <= x' <= 1}. The
problem separates per coordinate given one multiplier lambda >= 0: coordinate i of the
perturbation is sign(y_i) min(max(|y_i| - lambda, 0), u_i), with u_i the room the box leaves
in that direction; lambda is found by bisection on the L1 norm, which falls with lambda.
"""

from __future__ import annotations

import torch

BISECTIONS = 60
"""Halvings of lambda's bracket (float64): the bracket ends within 2^-60 of its width."""


def _shrunk(y: torch.Tensor, room: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    return torch.minimum((y.abs() - lam).clamp_min(0.0), room)


def project_l1_box(x: torch.Tensor, x_adv: torch.Tensor, eps: float) -> torch.Tensor:
    """The point of the L1 ball of radius ``eps`` around ``x`` within [0, 1] closest (in L2)
    to ``x_adv``; its L1 distance from ``x`` never exceeds ``eps``."""
    shape = x.shape
    x64 = x.detach().flatten(1).double()
    y = x_adv.detach().flatten(1).double() - x64
    room = torch.where(y > 0, 1.0 - x64, x64).clamp_min(0.0)
    zero = torch.zeros(y.shape[0], 1, dtype=y.dtype, device=y.device)
    hi = y.abs().amax(1, keepdim=True)
    lo = zero.clone()
    inside = _shrunk(y, room, zero).sum(1, keepdim=True) <= eps
    for _ in range(BISECTIONS):
        mid = (lo + hi) / 2
        over = _shrunk(y, room, mid).sum(1, keepdim=True) > eps
        lo = torch.where(over, mid, lo)
        hi = torch.where(over, hi, mid)
    lam = torch.where(inside, zero, hi)  # hi keeps the norm within eps
    delta = y.sign() * _shrunk(y, room, lam)
    return (x64 + delta).clamp(0.0, 1.0).to(x.dtype).view(shape)
