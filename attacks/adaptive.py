"""Attacks aimed at the Short Run classifier's structure, and transfer attacks.

- ``latent-pgd``: PGD whose loss pulls the inferred latent z_K(x') toward the mean latent of the
  nearest other class (through the whole Langevin chain, with batched EOT); for the ConvNet the
  latent is its penultimate feature vector (``ConvNet.embed``).
- ``fixed-noise-pgd``: PGD against a deterministic chain (Langevin noise held fixed by
  ``model.fixed_noise(seed)``); the run grid then evaluates the examples with fresh noise.
- ``transfer``: PGD crafted on a companion (source) model, evaluated on the target.

All three run robbench's PGD engine (``robbench.attacks.pgd``); for a deterministic model the
first two reduce to plain PGD.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from robbench.attacks.eot import LOSSES
from robbench.attacks.pgd import pgd


def latent_fn(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> latent of shape (N, d): mean z_K over the model's chains, or ConvNet features."""
    if hasattr(model, "infer"):
        chains = getattr(model, "n_chains", 1)
        return lambda x: model.infer(x, n_chains=chains).mean(1)
    if hasattr(model, "embed"):
        return model.embed
    raise ValueError(f"{type(model).__name__} exposes no latent (needs .infer or .embed)")


@torch.no_grad()
def class_latent_means(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, classes: int, draws: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean latent per class over ``draws`` inferences of (x, y); returns (means, present)."""
    encode = latent_fn(model)
    z = torch.stack([encode(x) for _ in range(draws)]).mean(0)
    means = torch.zeros(classes, z.shape[1], device=z.device)
    counts = torch.bincount(y, minlength=classes).to(z.dtype)
    means.index_add_(0, y, z)
    present = counts > 0
    means[present] /= counts[present, None]
    return means, present


def nearest_other_class(
    z: torch.Tensor, y: torch.Tensor, means: torch.Tensor, present: torch.Tensor
) -> torch.Tensor:
    """Per example, the class (other than y, present in ``means``) whose mean latent is nearest."""
    dist = torch.cdist(z, means)
    dist[:, ~present] = float("inf")
    dist.scatter_(1, y[:, None], float("inf"))
    return dist.argmin(1)


def latent_pgd(model: nn.Module, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """PGD toward the nearest other class's mean latent (``loss`` = latent), or on head logits."""
    loss_name = params.get("loss", "latent")
    common = dict(norm=norm, steps=params["steps"], step_size=params["step_size"],
                  random_start=params["random_start"], eot=params["eot"],
                  max_batch=params.get("max_batch"))
    if loss_name != "latent":
        if loss_name not in LOSSES:
            raise ValueError(f"latent-pgd loss {loss_name!r} is unknown; allowed: latent, "
                             f"{', '.join(LOSSES)}")
        return [pgd(model, x, y, eps=e, loss_fn=LOSSES[loss_name], **common) for e in eps_list]
    classes = params.get("classes") or _classes(model)
    means, present = class_latent_means(model, x, y, classes)
    with torch.no_grad():
        target = nearest_other_class(latent_fn(model)(x), y, means, present)
    encode = latent_fn(model)

    def pull(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -((z - means[t]) ** 2).sum(1)

    # eot_loss_grad's 'fooled' count compares the latent's argmax with the target: meaningless,
    # so latent-pgd runs a single restart (pgd returns right after it).
    return [pgd(encode, x, target, eps=e, loss_fn=pull, restarts=1, **common) for e in eps_list]


def _classes(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    return int(getattr(config, "classes", 10))


def fixed_noise_pgd(model: nn.Module, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """PGD with the Langevin noise held fixed (seed ``noise_seed``): a deterministic chain."""
    def run() -> list[torch.Tensor]:
        return [
            pgd(model, x, y, eps=e, norm=norm, steps=params["steps"],
                step_size=params["step_size"], random_start=params["random_start"], eot=1,
                restarts=params["restarts"], loss_fn=LOSSES[params["loss"]],
                max_batch=params.get("max_batch"))
            for e in eps_list
        ]

    if hasattr(model, "fixed_noise"):
        with model.fixed_noise(int(params["noise_seed"])):
            return run()
    return run()


def pick_source(model: nn.Module, companions: Mapping[str, nn.Module] | None,
                source: str | None = None) -> nn.Module:
    """The transfer source: ``companions[source]``, else the first companion that is not model."""
    companions = dict(companions or {})
    if source:
        if source not in companions:
            raise ValueError(f"transfer source {source!r} is not loaded; loaded: "
                             f"{', '.join(companions) or 'none'}")
        return companions[source]
    for other in companions.values():
        if other is not model:
            return other
    raise ValueError("transfer needs a source model other than the target (e.g. --models "
                     "convnet,shortrun); none was given")


def transfer(model: nn.Module, x, y, eps_list, norm, params, *,
             companions: Mapping[str, nn.Module] | None = None) -> list[torch.Tensor]:
    """PGD (EOT when the source is stochastic) on the source model, to be evaluated on model."""
    source = pick_source(model, companions, params.get("source"))
    source.eval()
    eot = params["source_eot"] if getattr(source, "stochastic", False) else 1
    return [
        pgd(source, x, y, eps=e, norm=norm, steps=params["steps"], step_size=params["step_size"],
            random_start=params["random_start"], eot=eot, loss_fn=LOSSES[params["loss"]],
            max_batch=params.get("max_batch"))
        for e in eps_list
    ]


def describe(params: dict[str, Any]) -> str:
    """One-line summary of PGD-like settings, for reports."""
    keys = ("steps", "step_size", "eot", "source_eot", "restarts", "loss")
    return ", ".join(f"{k}={params[k]}" for k in keys if k in params)
