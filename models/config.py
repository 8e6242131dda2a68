"""Configuration of a model's architecture, inference and training."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

MODEL_NAMES = ("convnet", "shortrun")
COMBINE_MODES = ("mean_logits", "mean_z", "vote")
OBJECTIVES = ("stages", "joint")
ACTIVATIONS = ("leaky_relu", "mish")
ARCHITECTURES = ("mirror", "thesis")
OPTIMIZERS = ("adam", "ranger")
THESIS_IMAGE_SIZES = (28, 32)  # the thesis's 28x28; 32x32 (CIFAR) with one more upsampling


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and (for the Short Run classifier) Langevin inference settings."""

    name: str
    channels: int = 1
    image_size: int = 8
    classes: int = 10
    width: int = 32
    latent: int = 16
    head_hidden: tuple[int, ...] = ()
    activation: str = "leaky_relu"
    langevin_steps: int = 20
    step_size: float = 0.005
    sigma: float = 0.1
    n_chains: int = 1
    combine: str = "mean_logits"
    arch: str = "mirror"

    def __post_init__(self) -> None:
        if self.name not in MODEL_NAMES:
            raise ValueError(f"model {self.name!r} is unknown; allowed: {', '.join(MODEL_NAMES)}")
        if self.arch not in ARCHITECTURES:
            raise ValueError(
                f"arch {self.arch!r} is unknown; allowed: {', '.join(ARCHITECTURES)}"
            )
        if self.arch == "thesis" and self.image_size not in THESIS_IMAGE_SIZES:
            raise ValueError(
                f"image_size {self.image_size} does not fit the thesis architecture; "
                f"allowed: {', '.join(map(str, THESIS_IMAGE_SIZES))}"
            )
        if self.image_size % 4:
            raise ValueError(f"image_size {self.image_size} must be divisible by 4")
        if self.combine not in COMBINE_MODES:
            raise ValueError(
                f"combine {self.combine!r} is unknown; allowed: {', '.join(COMBINE_MODES)}"
            )
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation {self.activation!r} is unknown; allowed: {', '.join(ACTIVATIONS)}"
            )
        for key in ("langevin_steps", "n_chains", "width", "latent"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        object.__setattr__(self, "head_hidden", tuple(self.head_hidden))

    @property
    def stochastic(self) -> bool:
        return self.name == "shortrun"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. ``objective='stages'`` is the thesis's three stages.

    The learning rate of each stage stays constant for its first ``anneal_from`` fraction of
    steps and then decays to zero on a cosine (the thesis anneals after 75%; 1.0 never anneals).
    Epoch counts may be fractional: training then stops part-way through the last pass.
    """

    objective: str = "stages"
    epochs: float = 30
    generative_epochs: float = 20
    discriminative_epochs: float = 10
    bptt_epochs: float = 20
    lr: float = 2e-3
    bptt_lr: float = 1e-3
    batch_size: int = 64
    recon_weight: float = 0.01
    seed: int = 0
    labels: int | None = None
    unlabelled: int | None = None
    optimizer: str = "adam"
    anneal_from: float = 1.0

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"objective {self.objective!r} is unknown; allowed: {', '.join(OBJECTIVES)}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer {self.optimizer!r} is unknown; allowed: {', '.join(OPTIMIZERS)}"
            )
        if not 0.0 <= self.anneal_from <= 1.0:
            raise ValueError(f"anneal_from {self.anneal_from} must lie in [0, 1]")


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild (and retrain) a model: dataset, architecture, training."""

    dataset: str
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        model = dict(data["model"])
        model["head_hidden"] = tuple(model.get("head_hidden", ()))
        return cls(
            dataset=data["dataset"], model=ModelConfig(**model), train=TrainConfig(**data["train"])
        )

    def fingerprint(self) -> str:
        """Short hash of the spec: two specs train the same model iff fingerprints agree."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]
