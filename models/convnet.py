"""The bottom-up ConvNet: the deterministic baseline matched to the Short Run classifier."""

from __future__ import annotations

import torch
from torch import nn

from robbench.models.config import ModelConfig
from robbench.models.layers import activation, classifier_head

SAME_4X4 = (1, 2, 1, 2)  # "same" padding of a 4x4 kernel (left, right, top, bottom)


class ConvNet(nn.Module):
    """conv 4x4/2, act, conv 4x4/2, act, linear to d, act, head: logits for x in [0, 1].

    ``arch='thesis'``: the thesis's ConvNet (nf = width, d = latent): conv 4x4 (nf), conv 4x4
    (2nf), max-pool 2, conv 4x4 (2nf), conv 3x3 (d), max-pool 2, flatten, then its MLP
    (head_hidden, e.g. 140 -> 80 -> classes); the first MLP layer counts as the features.
    """

    stochastic = False

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c, w, s = config.channels, config.width, config.image_size // 4
        if config.arch == "thesis":
            self._build_thesis(config)
            return
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

    def _build_thesis(self, config: ModelConfig) -> None:
        c, w, act = config.channels, config.width, config.activation
        if not config.head_hidden:
            raise ValueError("the thesis ConvNet needs head_hidden (the thesis: 140,80)")
        first, *rest = config.head_hidden
        s = config.image_size // 4
        self.features = nn.Sequential(
            nn.ZeroPad2d(SAME_4X4), nn.Conv2d(c, w, 4), activation(act),
            nn.ZeroPad2d(SAME_4X4), nn.Conv2d(w, 2 * w, 4), activation(act),
            nn.MaxPool2d(2),
            nn.ZeroPad2d(SAME_4X4), nn.Conv2d(2 * w, 2 * w, 4), activation(act),
            nn.Conv2d(2 * w, config.latent, 3, padding=1), activation(act),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(config.latent * s * s, first), activation(act),
        )
        self.head = classifier_head(first, tuple(rest), config.classes, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (width d), e.g. for the Fréchet distance of samples."""
        return self.features(x)
