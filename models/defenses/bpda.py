"""BPDA: Backward Pass Differentiable Approximation (Athalye, Carlini & Wagner 2018, Sec. 4.1).

A defense's non-differentiable step f(x) (rounding, a discrete search) gives an attack a zero or
useless gradient. BPDA keeps f on the forward pass and differentiates a smooth g with g(x) ~ f(x)
on the backward pass; for a preprocessing step that roughly returns its input, g is the
identity.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Step = Callable[[torch.Tensor], torch.Tensor]


def bpda(forward: Step, backward: Step | None = None) -> Step:
    """A step whose forward pass is ``forward`` and whose backward pass is that of ``backward``
    (the identity by default): value ``forward(x)``, gradient ``d backward(x) / d x``."""

    def step(x: torch.Tensor) -> torch.Tensor:
        approx = x if backward is None else backward(x)
        with torch.no_grad():
            exact = forward(x)
        if exact.shape != approx.shape:
            raise ValueError(f"bpda: forward gives shape {tuple(exact.shape)} but backward "
                             f"{tuple(approx.shape)}; the two must agree")
        return approx + (exact - approx).detach()

    return step
