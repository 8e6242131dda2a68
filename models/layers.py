"""Building blocks shared by the ConvNet and the Short Run classifier."""

from __future__ import annotations

from torch import nn


def activation(name: str) -> nn.Module:
    return nn.Mish() if name == "mish" else nn.LeakyReLU(0.2)


def classifier_head(latent: int, hidden: tuple[int, ...], classes: int, act: str) -> nn.Sequential:
    """MLP from the latent (width d) to class logits; ``hidden=()`` is a single linear layer."""
    layers: list[nn.Module] = []
    width = latent
    for h in hidden:
        layers += [nn.Linear(width, h), activation(act)]
        width = h
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)
