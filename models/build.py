"""A model object from its architecture config."""

from __future__ import annotations

from torch import nn

from robbench.models.config import ModelConfig
from robbench.models.convnet import ConvNet
from robbench.models.shortrun import ShortRunClassifier


def build_model(config: ModelConfig) -> nn.Module:
    """The ConvNet or Short Run classifier ``config`` describes (untrained)."""
    return ShortRunClassifier(config) if config.name == "shortrun" else ConvNet(config)
