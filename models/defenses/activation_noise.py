"""Defenses that make a base classifier's hidden activations random: SAP, test-time dropout."""

from __future__ import annotations

import math

import torch
from torch import nn

from robbench.defenses.hidden_layers import hook_activations
from robbench.defenses.noise_source import NoiseSource


def prune_activations(h: torch.Tensor, fraction: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """One SAP draw on a batch of activations (Dhillon et al. 2018, Algorithm 1).

    Per example, r = ceil(fraction * units) samples are drawn with replacement from the
    multinomial p_j = |h_j| / sum_k |h_k|; a unit never drawn is set to 0 and a kept one is
    scaled by 1 / P(kept) = 1 / (1 - (1 - p_j)^r), so that the layer's output is unbiased.
    """
    flat = h.flatten(1)
    magnitude = flat.abs()
    total = magnitude.sum(1, keepdim=True)
    p = magnitude / total.clamp_min(torch.finfo(h.dtype).tiny)
    r = max(1, math.ceil(fraction * flat.shape[1]))
    live = total[:, 0] > 0
    kept = torch.zeros_like(flat, dtype=torch.bool)
    if live.any():
        drawn = torch.multinomial(p[live].detach(), r, replacement=True, generator=generator)
        kept[live] = torch.zeros_like(kept[live]).scatter_(1, drawn, True)
    keep_prob = 1 - (1 - p).pow(r)
    scaled = flat / keep_prob.clamp_min(torch.finfo(h.dtype).tiny)
    return torch.where(kept, scaled, torch.zeros_like(flat)).view_as(h)


class StochasticActivationPruning(NoiseSource):
    """Stochastic activation pruning on every hidden activation of the base classifier.

    Dhillon et al., "Stochastic Activation Pruning for Robust Adversarial Defense", ICLR 2018:
    at test time each layer keeps the units that r draws with replacement, in proportion to
    |h|, hit, and rescales them by the inverse of their keep probability. ``fraction`` sets r as
    a multiple of the layer's units (the paper tunes r to trade accuracy for randomness).
    Broken by EOT (Athalye et al. 2018).
    """

    def __init__(self, base: nn.Module, fraction: float = 1.0) -> None:
        super().__init__()
        if not fraction > 0:
            raise ValueError(f"fraction {fraction!r} must be > 0")
        self.base, self.fraction = base, float(fraction)
        self._handles = hook_activations(base, self._prune)

    def _prune(self, h: torch.Tensor) -> torch.Tensor:
        if not self._inside:
            return h
        return prune_activations(h, self.fraction, self.generator(h.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.call_base(x)


class TestTimeDropout(NoiseSource):
    """Dropout with probability p on every hidden activation of the base, kept on at test time
    (Gal & Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016, as a defense: a
    stochastic classifier of the kind Athalye et al. 2018 and Tramèr et al. 2020 discuss).
    Units are kept with probability 1 - p and scaled by 1 / (1 - p)."""

    __test__ = False  # not a pytest class, whatever its name

    def __init__(self, base: nn.Module, p: float = 0.1) -> None:
        super().__init__()
        if not 0 < p < 1:
            raise ValueError(f"dropout probability {p!r} must lie in (0, 1)")
        self.base, self.p = base, float(p)
        self._handles = hook_activations(base, self._drop)

    def _drop(self, h: torch.Tensor) -> torch.Tensor:
        if not self._inside:
            return h
        keep = torch.rand(h.shape, generator=self.generator(h.device), device=h.device,
                          dtype=h.dtype) >= self.p
        return torch.where(keep, h / (1 - self.p), torch.zeros_like(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.call_base(x)
