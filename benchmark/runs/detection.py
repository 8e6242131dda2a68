"""Randomness detected, never assumed: is a model random, and how will it be treated?

A model is classified twice on the same batch, in eval mode; different logits mean it draws
noise (a Langevin chain, noise injection, a random purifier). A random model is always
treated as stochastic (EOT draws for the attacks, R passes for scoring), whatever it declares:
if it declares ``stochastic = False``, or the caller forces ``stochastic=False``, that is a
warning in the output and in the run's config.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn

from robbench.attacks.target import Target
from robbench.devices import parameter_device
from robbench.models.zoo import LoadedModel
from robbench.runs.model_contract import ModelContracts

DETECTION_EXAMPLES = 16


@dataclass(frozen=True)
class Randomness:
    """What robbench found out about one model's randomness."""

    declared: bool | None  # the model's own ``stochastic`` attribute, if any
    forced: bool | None  # the caller's ``stochastic=`` (None: auto)
    detected: bool
    stochastic: bool  # how the run treats it
    warning: str | None = None

    def as_record(self) -> dict:
        return asdict(self)


@torch.no_grad()
def differs_between_passes(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether two eval-mode passes over the same ``x`` give different logits (beyond float
    reduction noise)."""
    model.eval()
    first, second = model(x).double(), model(x).double()
    if first.shape != second.shape:
        return True
    return not torch.allclose(first, second, rtol=1e-5, atol=1e-6, equal_nan=True)


def assess_randomness(name: str, model: nn.Module, x: torch.Tensor,
                      forced: bool | str | None = "auto") -> Randomness:
    """Detect ``model``'s randomness on ``x`` (its first examples) and decide the treatment."""
    forced = None if forced in (None, "auto") else bool(forced)
    declared = getattr(model, "stochastic", None)
    declared = None if declared is None else bool(declared)
    detected = differs_between_passes(model, x[:DETECTION_EXAMPLES])
    warning = None
    if detected and (forced is False or (forced is None and declared is False)):
        said = "was given stochastic=False" if forced is False else "declares stochastic = False"
        warning = (f"model {name!r} {said}, but two passes on the same inputs gave different "
                   "logits: it is random, and is evaluated as stochastic (EOT draws, R "
                   "scoring passes)")
    stochastic = detected or bool(forced) or (forced is None and bool(declared))
    return Randomness(declared, forced, detected, stochastic, warning)


def as_target(name: str, model: nn.Module, x: torch.Tensor, classes: int | None = 10,
              forced: bool | str | None = "auto") -> Target:
    """``model`` as an attack target, random or not as its passes on ``x`` show (passes the
    contract checks; ``classes`` None takes the width of its logits)."""
    contracts = ModelContracts({name: model}, classes)
    with contracts.attached():
        return _detect(name, model, x, forced, contracts)[0]


def _detect(name: str, model: nn.Module, x: torch.Tensor, forced: bool | str | None,
            contracts: ModelContracts) -> tuple[Target, Randomness]:
    """Detection's two passes, held to the contract, and the treatment they decide."""
    with contracts.stage(name, f"randomness detection (two passes on {len(x)} images)"):
        randomness = assess_randomness(name, model, x, forced)
    return Target(model, randomness.stochastic, contracts.classes or 0, name), randomness


def detect_targets(models: Mapping[str, LoadedModel], x: torch.Tensor,
                   forced: bool | str | Mapping[str, bool | str], contracts: ModelContracts
                   ) -> dict[str, tuple[Target, Randomness]]:
    """{name: (Target, Randomness)}: every model's treatment, from what its passes on the first
    images show; the passes are the first the contract checks, so a broken model is refused
    before anything is written."""
    out = {}
    for name, loaded in models.items():
        choice = forced.get(name, "auto") if isinstance(forced, Mapping) else forced
        device_x = x[:DETECTION_EXAMPLES].to(parameter_device(loaded.module) or x.device)
        out[name] = _detect(name, loaded.module, device_x, choice, contracts)
    return out
