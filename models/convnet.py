"""The bottom-up ConvNet: the deterministic baseline matched to the Short Run classifier."""

from __future__ import annotations

import torch
from torch import nn

from robbench.models.config import ModelConfig
from robbench.models.layers import activation, classifier_head


class ConvNet(nn.Module):
    """conv 4x4/2, act, conv 4x4/2, act, linear to d, act, head: logits for x in [0, 1]."""

    stochastic = False

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c, w, s = config.channels, config.width, config.image_size // 4
        self.features = nn.Sequential(
            nn.Conv2d(c, w, 4, 2, 1),
            activation(config.activation),
            nn.Conv2d(w, 2 * w, 4, 2, 1),
            activation(config.activation),
            nn.Flatten(),
            nn.Linear(2 * w * s * s, config.latent),
            activation(config.activation),
        )
        self.head = classifier_head(
            config.latent, config.head_hidden, config.classes, config.activation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (width d), e.g. for the Fréchet distance of samples."""
        return self.features(x)
