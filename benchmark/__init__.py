"""robbench: adversarial robustness of a ConvNet against a Short Run generative classifier."""

__version__ = "0.1.0"
