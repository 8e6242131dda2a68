"""The model an attack is aimed at, with what robbench knows of it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Target:
    """A model under attack: the module, whether it is random (detected, never assumed), and
    its number of classes. Calling it calls the module."""

    model: nn.Module
    stochastic: bool
    classes: int = 10
    name: str = "model"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def hook(self, name: str):
        """The model's optional hook ``name`` (``infer``, ``embed``, ``fixed_noise``), or None."""
        return getattr(self.model, name, None)
