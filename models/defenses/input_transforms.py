"""Defenses that transform the input before a base classifier: noise, bit depth."""

from __future__ import annotations

import torch
from torch import nn

from robbench.defenses.bpda import bpda
from robbench.defenses.noise_source import NoiseSource


class NoiseInjection(NoiseSource):
    """Gaussian noise on the input, x + sigma * N(0, I), then the base classifier.

    The input-layer noise of Random Self-Ensemble (Liu et al., "Towards Robust Neural Networks
    via Random Self-ensemble", ECCV 2018), whose base is trained with the same noise; with
    Gaussian noise it is also the base classifier of randomized smoothing (Cohen et al. 2019).
    """

    def __init__(self, base: nn.Module, sigma: float) -> None:
        super().__init__()
        if not sigma > 0:
            raise ValueError(f"sigma {sigma!r} must be > 0")
        self.base, self.sigma = base, float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=self.generator(x.device), device=x.device,
                            dtype=x.dtype)
        return self.base(x + self.sigma * noise)


def reduce_bit_depth(x: torch.Tensor, levels: int) -> torch.Tensor:
    """x in [0, 1] rounded to ``levels`` evenly spaced values (levels = 2: one bit)."""
    steps = levels - 1
    return torch.round(x.clamp(0, 1) * steps) / steps


class Quantize(nn.Module):
    """Bit-depth reduction of the input, then the base classifier: deterministic, and its
    gradient is zero almost everywhere.

    Feature squeezing by colour-depth reduction (Xu, Evans & Qi, "Feature Squeezing: Detecting
    Adversarial Examples in Deep Neural Networks", NDSS 2018; 1 bit on MNIST). ``bpda=True``
    attacks it as Athalye et al. (2018) did: the rounding on the forward pass, the identity on
    the backward pass (:func:`robbench.bpda`). The two differ only in their gradient.
    """

    stochastic = False

    def __init__(self, base: nn.Module, levels: int = 2, *, bpda: bool = False) -> None:
        super().__init__()
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
            raise ValueError(f"levels {levels!r} must be an integer >= 2")
        self.base, self.levels, self.bpda = base, levels, bpda

    def squeeze(self, x: torch.Tensor) -> torch.Tensor:
        step = lambda t: reduce_bit_depth(t, self.levels)  # noqa: E731
        return bpda(step)(x) if self.bpda else step(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(self.squeeze(x))
