"""Attacks aimed at a model's structure, and transfer attacks.

- ``latent-pgd``: PGD whose loss pulls the model's latent (its ``infer`` hook: z_K of the
  Langevin chain, or its ``embed`` hook: penultimate features) toward the mean latent of the
  nearest other class, through the whole chain, with batched EOT;
- ``fixed-noise-pgd``: PGD against a deterministic chain (the noise held fixed by the model's
  ``fixed_noise(seed)`` hook); the run scores the examples with fresh noise. For a
  deterministic model it is plain PGD;
- ``transfer``: PGD crafted on a companion (source) model, evaluated on the target.

All three run robbench's PGD engine (``robbench.attacks.pgd``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from robbench.attacks.eot import LOSSES
from robbench.attacks.pgd import pgd
from robbench.attacks.target import Target


def latent_fn(target: Target) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> latent of shape (N, d): mean z_K over the model's chains, or its features."""
    infer, embed = target.hook("infer"), target.hook("embed")
    if infer is not None:
        chains = getattr(target.model, "n_chains", 1)
        return lambda x: infer(x, n_chains=chains).mean(1)
    if embed is not None:
        return embed
    raise ValueError(f"{type(target.model).__name__} exposes no latent (needs .infer or .embed)")


def latent_missing(target: Target) -> str | None:
    """Why latent-pgd cannot run on ``target`` (None if it can)."""
    if target.hook("infer") is None and target.hook("embed") is None:
        return "no latent hook (infer or embed)"
    return None


def fixed_noise_missing(target: Target) -> str | None:
    """Why fixed-noise-pgd cannot run on ``target`` (None if it can)."""
    if target.stochastic and target.hook("fixed_noise") is None:
        return "random model without a fixed_noise hook"
    return None


@torch.no_grad()
def class_latent_means(
    encode: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
    classes: int, draws: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean latent per class over ``draws`` inferences of (x, y); returns (means, present)."""
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


def _pgd_settings(params: dict[str, Any], norm: str) -> dict[str, Any]:
    return dict(norm=norm, steps=params["steps"], step_size=params["step_size"],
                random_start=params["random_start"], max_batch=params.get("max_batch"))


def latent_pgd(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """PGD toward the nearest other class's mean latent (``loss`` = latent), or on the logits."""
    loss_name = params.get("loss", "latent")
    common = _pgd_settings(params, norm)
    if loss_name != "latent":
        if loss_name not in LOSSES:
            raise ValueError(f"latent-pgd loss {loss_name!r} is unknown; allowed: latent, "
                             f"{', '.join(LOSSES)}")
        return [pgd(target, x, y, eps=e, loss_fn=LOSSES[loss_name], eot=params["eot"],
                    stochastic=target.stochastic, **common)
                for e in eps_list]
    encode = latent_fn(target)
    means, present = class_latent_means(encode, x, y, target.classes)
    with torch.no_grad():
        goal = nearest_other_class(encode(x), y, means, present)

    def pull(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -((z - means[t]) ** 2).sum(1)

    # eot_loss_grad's 'fooled' count compares the latent's argmax with the goal class, which
    # means nothing: latent-pgd runs one restart and keeps its last iterate.
    return [pgd(encode, x, goal, eps=e, loss_fn=pull, restarts=1, eot=params["eot"], **common)
            for e in eps_list]


def fixed_noise_pgd(target: Target, x, y, eps_list, norm, params) -> list[torch.Tensor]:
    """PGD with the model's noise held fixed (seed ``noise_seed``): a deterministic chain."""
    def run() -> list[torch.Tensor]:
        return [pgd(target.model, x, y, eps=e, eot=1, restarts=params["restarts"],
                    loss_fn=LOSSES[params["loss"]], **_pgd_settings(params, norm))
                for e in eps_list]

    fixed = target.hook("fixed_noise")
    if fixed is None:
        return run()
    with fixed(int(params["noise_seed"])):
        return run()


def pick_source(target: Target, companions: Mapping[str, Target] | None,
                source: str | None = None) -> Target:
    """The transfer source: ``companions[source]``, else the first companion that is not the
    target."""
    companions = dict(companions or {})
    if source:
        if source not in companions:
            raise ValueError(f"transfer source {source!r} is not loaded; loaded: "
                             f"{', '.join(companions) or 'none'}")
        return companions[source]
    for other in companions.values():
        if other.model is not target.model:
            return other
    raise ValueError("transfer needs a source model other than the target (e.g. --model "
                     "convnet --model shortrun); none was given")


def transfer(target: Target, x, y, eps_list, norm, params, *,
             companions: Mapping[str, Target] | None = None) -> list[torch.Tensor]:
    """PGD (EOT when the source is random) on the source model, to be evaluated on target."""
    source = pick_source(target, companions, params.get("source"))
    source.model.eval()
    eot = params["source_eot"] if source.stochastic else 1
    return [pgd(source, x, y, eps=e, eot=eot, loss_fn=LOSSES[params["loss"]],
                stochastic=source.stochastic, **_pgd_settings(params, norm))
            for e in eps_list]
