"""Where a randomised defense draws its noise: fresh each call, or fixed by ``fixed_noise``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class NoiseSource(nn.Module):
    """Mixin of the random defenses: ``generator(device)`` is None (fresh noise) unless a
    ``fixed_noise(seed)`` block is active, where every call draws the same noise (a
    deterministic model, as the fixed-noise attack needs). ``stochastic = True`` declares the
    randomness that robbench also detects."""

    stochastic = True
    noise_seed: int | None = None
    _inside = False  # True while this defense's forward pass runs (its hooks act only then)

    def call_base(self, x: torch.Tensor) -> torch.Tensor:
        """``self.base(x)`` with this defense's activation hooks switched on: the base module
        called on its own stays the plain classifier."""
        self._inside = True
        try:
            return self.base(x)
        finally:
            self._inside = False

    def generator(self, device: torch.device) -> torch.Generator | None:
        if self.noise_seed is None:
            return None
        return torch.Generator(device=device).manual_seed(self.noise_seed)

    @contextmanager
    def fixed_noise(self, seed: int) -> Iterator[NoiseSource]:
        """Within the block every call uses the same noise (given the same input shape)."""
        previous, self.noise_seed = self.noise_seed, seed
        try:
            yield self
        finally:
            self.noise_seed = previous
