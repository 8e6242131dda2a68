"""Attack registry: attacks by name, with literature defaults, backends and threat models.

Every attack runs on robbench's own implementation by default (``robbench``); torchattacks,
foolbox and Croce & Hein's AutoAttack code are optional backends (extras
``robbench[torchattacks]``, ``robbench[foolbox]``, ``robbench[autoattack]``) for the attacks
they offer, imported only when chosen.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from robbench.attacks import budgets
from robbench.attacks.adaptive import fixed_noise_missing, latent_missing
from robbench.attacks.target import Target
from robbench.attacks.threat_model import check_threat_model

CraftFn = Callable[..., list[torch.Tensor]]
BACKENDS = ("robbench", "torchattacks", "foolbox", "autoattack")
DEFAULT_BACKEND = "robbench"
_MODULES = {"robbench": "robbench.attacks.own_backend",
            "torchattacks": "robbench.attacks.torchattacks_backend",
            "foolbox": "robbench.attacks.foolbox_backend",
            "autoattack": "robbench.attacks.autoattack_backend"}
_ADAPTIVE = "robbench.attacks.adaptive"
AUTO = "auto"
"""``eot`` = auto: the number of noise draws is chosen by convergence (``robbench.runs``)."""


@dataclass(frozen=True)
class AttackSpec:
    """An attack: its threat model, default settings and one craft function per backend
    (``module:function``, imported when the attack runs)."""

    name: str
    norm: str
    description: str
    defaults: dict[str, Any]
    backends: dict[str, str] = field(default_factory=dict)
    default_eps: tuple[float, ...] = budgets.LINF
    needs_companions: bool = False  # the craft function takes companions={name: Target}
    unavailable: Callable[[Target], str | None] | None = None  # why it cannot run on a model


def _on(*backends: str, function: str) -> dict[str, str]:
    return {b: f"{_MODULES[b]}:{function}" for b in backends}


_PGD = {"steps": 40, "step_size": 0.01, "random_start": True, "eot": 1, "restarts": 1,
        "loss": "ce", "max_batch": None, "best_iterate": True}
_PGD_L2 = {**_PGD, "step_size": 0.1}
_ALL = ("robbench", "torchattacks", "foolbox")
_TWO = ("robbench", "torchattacks")
_REF = ("robbench", "autoattack")
_THREE = ("robbench", "torchattacks", "autoattack")

_APGD_T = {"steps": 100, "targets": 9, "restarts": 1, "eot": 1, "max_batch": None}
_FAB_T = {"steps": 100, "targets": 9, "eot": 1, "max_batch": None}
_AUTOATTACK = {"steps": 100, "targets": 9, "n_queries": 5000, "eot": 20, "max_batch": None}
_SUFFIX = {"linf": "", "l2": "-l2", "l1": "-l1"}
_BUDGETS = {"linf": budgets.LINF, "l2": budgets.L2, "l1": budgets.L1}
_LABEL = {"linf": "L-inf", "l2": "L2", "l1": "L1"}


def _targeted_and_autoattack() -> dict[str, AttackSpec]:
    """apgd-t, fab-t and autoattack (the standard version) at L-inf, L2 and L1."""
    out = {}
    for norm, suffix in _SUFFIX.items():
        label, eps = _LABEL[norm], _BUDGETS[norm]
        out[f"apgd-t{suffix}"] = AttackSpec(
            f"apgd-t{suffix}", norm, f"APGD-T {label} (Croce & Hein 2020): targeted DLR, 9 "
            "runner-up classes, 100 steps each", dict(_APGD_T),
            _on(*_REF, function="apgd_t"), default_eps=eps)
        out[f"fab-t{suffix}"] = AttackSpec(
            f"fab-t{suffix}", norm, f"FAB-T {label} (Croce & Hein 2020): minimal-norm targeted "
            "boundary attack, 9 runner-up classes, 100 steps each", dict(_FAB_T),
            _on(*_REF, function="fab_t"), default_eps=eps)
        parts = ("APGD-CE x5, APGD-T (5 classes), FAB-T" if norm == "l1" else
                 "APGD-CE, APGD-T, FAB-T, Square-5000")
        out[f"autoattack{suffix}"] = AttackSpec(
            f"autoattack{suffix}", norm, f"AutoAttack standard {label} (Croce & Hein 2020): "
            f"{parts}, each on the survivors", dict(_AUTOATTACK),
            _on(*_REF, function="autoattack"), default_eps=eps)
    return out


ATTACKS: dict[str, AttackSpec] = {
    "fgsm": AttackSpec("fgsm", "linf", "FGSM, one signed-gradient step (Goodfellow et al. 2015)",
                       {"eot": 1, "loss": "ce", "max_batch": None}, _on(*_ALL, function="fgsm")),
    "pgd": AttackSpec("pgd", "linf", "PGD L-inf, 40 steps of 0.01, random start (Madry et al. "
                      "2018)", dict(_PGD), _on(*_ALL, function="pgd_steps")),
    "pgd-l2": AttackSpec("pgd-l2", "l2", "PGD L2, 40 steps of 0.1, random start",
                         dict(_PGD_L2), _on(*_ALL, function="pgd_steps"),
                         default_eps=budgets.L2),
    "cw": AttackSpec("cw", "l2", "Carlini-Wagner L2: binary search over c (9 steps from "
                     "1e-3, early abort), 1,000 Adam steps of lr 0.01 per search step (the "
                     "paper: up to 10,000), kappa=0; robust if no adversarial example within "
                     "eps", {"c": 1e-3, "search_steps": 9, "kappa": 0.0, "steps": 1000,
                             "lr": 0.01, "eot": 1, "max_batch": None},
                     _on(*_ALL, function="cw"), default_eps=budgets.L2),
    "eot-pgd": AttackSpec("eot-pgd", "linf", "PGD L-inf averaging each gradient over noise "
                          "draws in one batched pass (EOT; draws chosen by convergence)",
                          {**_PGD, "eot": AUTO}, _on(*_TWO, function="pgd_steps")),
    "eot-pgd-l2": AttackSpec("eot-pgd-l2", "l2", "PGD L2 with batched EOT (pgd-l2's 40 steps "
                             "of 0.1; draws chosen by convergence)", {**_PGD_L2, "eot": AUTO},
                             _on("robbench", function="pgd_steps"), default_eps=budgets.L2),
    "apgd": AttackSpec("apgd", "linf", "APGD-CE (Croce & Hein 2020), 100 steps",
                       {"steps": 100, "restarts": 1, "eot": 1, "loss": "ce", "max_batch": None},
                       _on(*_THREE, function="apgd")),
    "autoattack-rand": AttackSpec("autoattack-rand", "linf",
                                  "AutoAttack 'rand' for randomised defenses, as the reference "
                                  "implementation runs it: APGD-CE + APGD-DLR, 100 steps, EOT 20",
                                  {"steps": 100, "eot": 20, "max_batch": None},
                                  _on(*_THREE, function="autoattack_rand")),
    "apgd-l1": AttackSpec("apgd-l1", "l1", "APGD-CE at L1 (Croce & Hein 2021), 100 steps, "
                          "adaptive sparsity", {"steps": 100, "restarts": 1, "eot": 1,
                                                "loss": "ce", "max_batch": None},
                          _on(*_REF, function="apgd"), default_eps=budgets.L1),
    **_targeted_and_autoattack(),
    "square": AttackSpec("square", "linf", "Square attack (Andriushchenko et al. 2020), "
                         "score-based black box, 1,000 queries",
                         {"n_queries": 1000, "restarts": 1, "eot": 1, "max_batch": None},
                         _on(*_THREE, function="square")),
    "latent-pgd": AttackSpec("latent-pgd", "linf", "PGD L-inf pulling the model's latent "
                             "toward the nearest other class's mean latent, with EOT",
                             {"steps": 40, "step_size": 0.01, "random_start": True, "eot": 8,
                              "loss": "latent", "max_batch": None},
                             {"robbench": f"{_ADAPTIVE}:latent_pgd"},
                             unavailable=latent_missing),
    "fixed-noise-pgd": AttackSpec("fixed-noise-pgd", "linf", "PGD L-inf against the model "
                                  "with its noise held fixed, evaluated with fresh noise",
                                  {**_PGD, "noise_seed": 0},
                                  {"robbench": f"{_ADAPTIVE}:fixed_noise_pgd"},
                                  unavailable=fixed_noise_missing),
    "transfer": AttackSpec("transfer", "linf", "PGD L-inf crafted on the other model (EOT when "
                           "it is random), evaluated on this one",
                           {"steps": 40, "step_size": 0.01, "random_start": True,
                            "source_eot": 8, "loss": "ce", "source": None, "max_batch": None},
                           {"robbench": f"{_ADAPTIVE}:transfer"}, needs_companions=True),
}


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


def check_backend(attacks: Sequence[str], backend: str) -> None:
    """Every attack must run on ``backend``; one that does not is named with its backends."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is unknown; allowed: {', '.join(BACKENDS)}")
    for name in attacks:
        spec = get_attack(name)
        if backend not in spec.backends:
            raise ValueError(f"backend {backend!r} does not run attack {name!r}; allowed: "
                             f"{', '.join(spec.backends)}")


def effective_params(target: Target, params: dict[str, Any]) -> dict[str, Any]:
    """EOT over noise draws means nothing for a deterministic model: it runs with eot = 1."""
    if "eot" in params and not target.stochastic:
        return {**params, "eot": 1}
    return params


def craft_function(spec: AttackSpec, backend: str) -> CraftFn:
    """The backend's craft function of ``spec``, imported now (a missing optional library is
    a one-line error naming the extra that installs it)."""
    if backend not in spec.backends:
        raise ValueError(f"backend {backend!r} does not run attack {spec.name!r}; allowed: "
                         f"{', '.join(spec.backends)}")
    module, function = spec.backends[backend].split(":")
    try:
        return getattr(importlib.import_module(module), function)
    except ImportError as exc:
        raise ImportError(f"backend {backend!r} needs {exc.name}, which is not installed: "
                          f"pip install 'robbench[{backend}]'") from None


def craft(
    name: str,
    target: Target,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: Sequence[float],
    *,
    backend: str = DEFAULT_BACKEND,
    params: dict[str, Any] | None = None,
    companions: Mapping[str, Target] | None = None,
) -> dict[float, torch.Tensor]:
    """Adversarial examples for every eps, each checked against its threat model.

    ``companions`` ({name: Target}) are the other models of the run, for attacks that craft
    on a source model (``transfer``).
    """
    spec = get_attack(name)
    fn = craft_function(spec, backend)
    params = effective_params(target, dict(params if params is not None else spec.defaults))
    if params.get("eot") == AUTO:
        raise ValueError(f"{name}: eot 'auto' must be resolved to a number of draws before "
                         "crafting (robbench run does it by convergence)")
    target.model.eval()
    extra = {"companions": companions} if spec.needs_companions else {}
    adversarial = fn(target, x, y, list(eps), spec.norm, params, **extra)
    out = {}
    for e, x_adv in zip(eps, adversarial, strict=True):
        x_adv = x_adv.detach()
        check_threat_model(x, x_adv, spec.norm, e)
        out[e] = x_adv
    return out
