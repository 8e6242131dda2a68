"""Which torch device a command runs on."""

from __future__ import annotations

import torch
from torch import nn

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> str:
    """``auto`` is CUDA when a GPU is visible, else the CPU; an unknown or unavailable device is
    a ValueError naming what is allowed."""
    if name not in DEVICES:
        raise ValueError(f"device {name!r} is unknown; allowed: {', '.join(DEVICES)}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use cpu")
    return name


def parameter_device(model: nn.Module) -> torch.device | None:
    """Where ``model``'s first parameter or buffer lives; None for a parameter-free model."""
    for tensor in [*model.parameters(), *model.buffers()]:
        return tensor.device
    return None
