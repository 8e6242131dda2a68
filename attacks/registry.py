"""Attack registry: attacks by name, with literature defaults, backends and threat models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robbench.attacks import adaptive
from robbench.attacks import foolbox_backend as fbb
from robbench.attacks import torchattacks_backend as ta
from robbench.attacks.threat_model import check_threat_model

CraftFn = Callable[..., list[torch.Tensor]]
BACKENDS = ("torchattacks", "foolbox")


@dataclass(frozen=True)
class AttackSpec:
    """An attack: its threat model, default settings and one craft function per backend."""

    name: str
    norm: str
    description: str
    defaults: dict[str, Any]
    backends: dict[str, CraftFn] = field(default_factory=dict)
    default_eps: tuple[float, ...] = (0.1, 0.2, 0.3)
    needs_companions: bool = False  # the craft function takes companions={name: model}


_PGD = {"steps": 40, "step_size": 0.01, "random_start": True, "eot": 1, "restarts": 1,
        "loss": "ce", "max_batch": None}
_PGD_L2 = {**_PGD, "step_size": 0.1}

ATTACKS: dict[str, AttackSpec] = {
    "fgsm": AttackSpec("fgsm", "linf", "FGSM, one signed-gradient step (Goodfellow et al. 2015)",
                       {"eot": 1, "loss": "ce", "max_batch": None},
                       {"torchattacks": ta.fgsm, "foolbox": fbb.fgsm}),
    "pgd": AttackSpec("pgd", "linf", "PGD L-inf, 40 steps of 0.01, random start (Madry et al.)",
                      dict(_PGD), {"torchattacks": ta.pgd_steps, "foolbox": fbb.pgd_steps}),
    "pgd-l2": AttackSpec("pgd-l2", "l2", "PGD L2, 40 steps of 0.1, random start",
                         dict(_PGD_L2),
                         {"torchattacks": ta.pgd_steps, "foolbox": fbb.pgd_steps},
                         default_eps=(0.5, 1.0, 2.0)),
    "cw": AttackSpec("cw", "l2", "Carlini-Wagner L2 (c=1, kappa=0, 100 steps, lr 0.01); "
                     "robust if no adversarial within eps",
                     {"c": 1.0, "kappa": 0.0, "steps": 100, "lr": 0.01},
                     {"torchattacks": ta.cw, "foolbox": fbb.cw},
                     default_eps=(0.5, 1.0, 2.0)),
    "eot-pgd": AttackSpec("eot-pgd", "linf", "PGD L-inf with batched EOT through the Langevin "
                          "chain (default 16 draws per gradient)",
                          {**_PGD, "eot": 16}, {"torchattacks": ta.engine_pgd}),
    "eot-pgd-l2": AttackSpec("eot-pgd-l2", "l2", "PGD L2 with batched EOT through the Langevin "
                             "chain (default 16 draws per gradient; pgd-l2's 40 steps of 0.1)",
                             {**_PGD_L2, "eot": 16},
                             {"torchattacks": ta.engine_pgd}, default_eps=(0.5, 1.0, 2.0)),
    "apgd": AttackSpec("apgd", "linf", "APGD-CE (Croce & Hein 2020) with eot_iter",
                       {"steps": 100, "restarts": 1, "eot": 1, "loss": "ce", "seed": 0},
                       {"torchattacks": ta.apgd}),
    "autoattack-rand": AttackSpec("autoattack-rand", "linf",
                                  "AutoAttack 'rand' for randomised defenses, as the reference "
                                  "implementation runs it: APGD-CE + APGD-DLR, 100 steps, EOT 20",
                                  {"steps": 100, "eot": 20, "seed": 0},
                                  {"torchattacks": ta.autoattack_rand}),
    "square": AttackSpec("square", "linf", "Square attack, score-based black box (no gradients)",
                         {"n_queries": 1000, "restarts": 1, "seed": 0},
                         {"torchattacks": ta.square}),
    "latent-pgd": AttackSpec("latent-pgd", "linf", "PGD L-inf pulling the inferred latent z_K "
                             "toward the nearest other class's mean latent, through the chain, "
                             "with EOT (ConvNet: penultimate features)",
                             {"steps": 40, "step_size": 0.01, "random_start": True, "eot": 8,
                              "loss": "latent", "max_batch": None},
                             {"torchattacks": adaptive.latent_pgd}),
    "fixed-noise-pgd": AttackSpec("fixed-noise-pgd", "linf", "PGD L-inf against a fixed-noise "
                                  "(deterministic) Langevin chain, evaluated with fresh noise",
                                  {**_PGD, "noise_seed": 0},
                                  {"torchattacks": adaptive.fixed_noise_pgd}),
    "transfer": AttackSpec("transfer", "linf", "PGD L-inf crafted on the other model (EOT when "
                           "it is stochastic), evaluated on this one",
                           {"steps": 40, "step_size": 0.01, "random_start": True,
                            "source_eot": 8, "loss": "ce", "source": None, "max_batch": None},
                           {"torchattacks": adaptive.transfer}, needs_companions=True),
}
ENGINE_FNS = (ta.engine_pgd, adaptive.latent_pgd, adaptive.fixed_noise_pgd, adaptive.transfer)


def get_attack(name: str) -> AttackSpec:
    if name not in ATTACKS:
        raise ValueError(f"attack {name!r} is unknown; allowed: {', '.join(ATTACKS)}")
    return ATTACKS[name]


def attack_params(name: str, **overrides: Any) -> dict[str, Any]:
    """Defaults of ``name`` with ``overrides`` (None means keep the default); unknown keys fail."""
    spec = get_attack(name)
    params = dict(spec.defaults)
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in params:
            raise ValueError(
                f"setting {key!r} does not apply to attack {name!r}; allowed: "
                f"{', '.join(sorted(params))}"
            )
        params[key] = value
    return params


def params_for(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Defaults of ``name`` overridden by those ``settings`` that apply to it."""
    defaults = get_attack(name).defaults
    return attack_params(name, **{k: v for k, v in settings.items() if k in defaults})


def check_settings(attacks: Sequence[str], settings: dict[str, Any]) -> None:
    """Every setting must apply to at least one of ``attacks``."""
    for key, value in settings.items():
        if value is not None and not any(key in get_attack(a).defaults for a in attacks):
            allowed = sorted({k for a in attacks for k in get_attack(a).defaults})
            raise ValueError(
                f"setting {key!r} applies to none of {', '.join(attacks)}; allowed: "
                f"{', '.join(allowed)}"
            )


def effective_params(spec: AttackSpec, model: nn.Module, params: dict[str, Any]) -> dict[str, Any]:
    """EOT over noise draws means nothing for a deterministic model: it runs with eot = 1."""
    if "eot" in params and not getattr(model, "stochastic", False):
        return {**params, "eot": 1}
    return params


def backend_label(spec: AttackSpec, backend: str, params: dict[str, Any]) -> str:
    """The library that actually ran with these (effective) params: robbench's engine replaces
    torchattacks for EOT, restarts and the margin loss."""
    fn = spec.backends[backend]
    if fn in ENGINE_FNS or (fn in ta.ENGINE_WHEN_EOT and ta.uses_eot_engine(params)):
        return "robbench"
    return backend


def craft(
    name: str,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: Sequence[float],
    *,
    backend: str = "torchattacks",
    params: dict[str, Any] | None = None,
    companions: dict[str, nn.Module] | None = None,
) -> dict[float, torch.Tensor]:
    """Adversarial examples for every eps, each checked against its threat model.

    ``companions`` ({name: model}) are the other loaded models, for attacks that craft on a
    source model (``transfer``).
    """
    spec = get_attack(name)
    if backend not in spec.backends:
        raise ValueError(
            f"backend {backend!r} does not run attack {name!r}; allowed: {', '.join(spec.backends)}"
        )
    params = effective_params(spec, model, params if params is not None else spec.defaults)
    model.eval()
    extra = {"companions": companions} if spec.needs_companions else {}
    adversarial = spec.backends[backend](model, x, y, list(eps), spec.norm, params, **extra)
    out = {}
    for e, x_adv in zip(eps, adversarial, strict=True):
        x_adv = x_adv.detach()
        check_threat_model(x, x_adv, spec.norm, e)
        out[e] = x_adv
    return out
