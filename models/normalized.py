"""Models that expect normalised inputs, wrapped to take images in [0, 1].

Many published models (RobustBench's among them) standardise their input with a per-channel
mean and standard deviation. Attacking such a model on the standardised scale would change
what an epsilon means; :class:`Normalized` puts the standardisation inside the model, so
robbench's epsilon stays in [0, 1] pixel units and the record names the statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

NORMALIZE_FORMAT = "MEAN/STD, each one number or one per channel, e.g. 0.5/0.25 or " \
                   "0.4914,0.4822,0.4465/0.2471,0.2435,0.2616"


class Normalized(nn.Module):
    """``model((x - mean) / std)`` for images ``x`` in [0, 1]; the model's hooks (its
    ``stochastic`` flag, ``fixed_noise``, ``embed``, ``infer``) see the same inputs."""

    def __init__(self, model: nn.Module, mean: float | Sequence[float],
                 std: float | Sequence[float]) -> None:
        super().__init__()
        mean_t, std_t = _channels(mean, "mean"), _channels(std, "std")
        if len(mean_t) != len(std_t) and 1 not in (len(mean_t), len(std_t)):
            raise ValueError(f"mean has {len(mean_t)} values and std {len(std_t)}; give one "
                             "value or one per channel for each")
        if not bool((std_t > 0).all()):
            raise ValueError(f"std {std_t.tolist()} must be positive")
        self.model = model
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))
        if hasattr(model, "stochastic"):
            self.stochastic = model.stochastic
        if hasattr(model, "fixed_noise"):
            self.fixed_noise = model.fixed_noise
        for hook in ("embed", "infer"):
            if hasattr(model, hook):
                setattr(self, hook, self._standardised(getattr(model, hook)))

    @property
    def normalization(self) -> dict[str, list[float]]:
        """The statistics, as records name them."""
        return {"mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std``: images in [0, 1] on the scale the model was trained on."""
        return (x - self.mean) / self.std

    def _standardised(self, hook):  # noqa: ANN001, ANN202 - wraps any hook's signature
        return lambda x, *args, **kwargs: hook(self.standardise(x), *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits of images ``x`` in [0, 1]."""
        return self.model(self.standardise(x))


def _channels(values: float | Sequence[float], what: str) -> torch.Tensor:
    tensor = torch.as_tensor(values, dtype=torch.float32).flatten()
    if tensor.numel() == 0 or not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{what} {values!r} must be one or more finite numbers")
    return tensor


def parse_normalize(text: str) -> tuple[list[float], list[float]]:
    """``MEAN/STD`` (comma-separated per channel) into (mean, std)."""
    mean, sep, std = text.partition("/")
    try:
        if not sep:
            raise ValueError
        values = ([float(v) for v in mean.split(",")], [float(v) for v in std.split(",")])
    except ValueError:
        raise ValueError(f"normalisation {text!r} is not {NORMALIZE_FORMAT}") from None
    Normalized(nn.Identity(), *values)  # the same checks as the wrapper
    return values


def input_normalization(module: nn.Module) -> dict[str, dict[str, list[float]]]:
    """``{"input_normalization": {mean, std}}`` for a :class:`Normalized` model, else {}:
    what a run's record adds for the model."""
    return {"input_normalization": module.normalization} if isinstance(module, Normalized) else {}
