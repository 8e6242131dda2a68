"""Building blocks shared by the ConvNet and the Short Run classifier."""

from __future__ import annotations

import torch
from torch import nn

LEAKY_SLOPE = 0.2


def activation(name: str) -> nn.Module:
    return nn.Mish() if name == "mish" else nn.LeakyReLU(LEAKY_SLOPE)


def activation_derivative(name: str, a: torch.Tensor) -> torch.Tensor:
    """d act(a) / da as a first-order expression (differentiable again by autograd)."""
    if name == "mish":
        softplus = nn.functional.softplus(a)
        tanh_sp = torch.tanh(softplus)
        return tanh_sp + a * (1 - tanh_sp * tanh_sp) * torch.sigmoid(a)
    return torch.where(a > 0, torch.ones_like(a), torch.full_like(a, LEAKY_SLOPE))


def classifier_head(latent: int, hidden: tuple[int, ...], classes: int, act: str) -> nn.Sequential:
    """MLP from the latent (width d) to class logits; ``hidden=()`` is a single linear layer."""
    layers: list[nn.Module] = []
    width = latent
    for h in hidden:
        layers += [nn.Linear(width, h), activation(act)]
        width = h
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)
