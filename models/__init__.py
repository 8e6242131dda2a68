"""Models of robbench: the ConvNet, the Short Run classifier, training and the registry."""

from robbench.models.config import ModelConfig, TrainConfig
from robbench.models.convnet import ConvNet
from robbench.models.shortrun import ShortRunClassifier, langevin_infer

__all__ = ["ConvNet", "ModelConfig", "ShortRunClassifier", "TrainConfig", "langevin_infer"]
