"""Threat-model checks: every adversarial example must lie in its epsilon-ball and in [0, 1]."""

from __future__ import annotations

import torch

NORMS = ("linf", "l2", "l1")
TOLERANCE = 1e-6


class ThreatModelViolation(RuntimeError):
    """An attack returned an example outside its threat model; it must never become a result."""


def perturbation_norms(x: torch.Tensor, x_adv: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example norm of x_adv - x (L-infinity, L2 or L1 over all pixels)."""
    delta = (x_adv - x).flatten(1)
    if norm == "linf":
        return delta.abs().amax(1)
    if norm == "l2":
        return delta.norm(p=2, dim=1)
    if norm == "l1":
        return delta.abs().sum(1)
    raise ValueError(f"norm {norm!r} is unknown; allowed: {', '.join(NORMS)}")


def check_threat_model(x: torch.Tensor, x_adv: torch.Tensor, norm: str, eps: float) -> None:
    """Raise ThreatModelViolation unless |x_adv - x| <= eps + 1e-6 and 0 <= x_adv <= 1."""
    if x_adv.shape != x.shape:
        raise ThreatModelViolation(f"adversarial shape {tuple(x_adv.shape)} != {tuple(x.shape)}")
    if not torch.isfinite(x_adv).all():
        raise ThreatModelViolation("adversarial examples contain NaN or infinite pixels")
    low, high = x_adv.min().item(), x_adv.max().item()
    if low < -TOLERANCE or high > 1 + TOLERANCE:
        raise ThreatModelViolation(f"pixels leave [0, 1]: min {low:.6g}, max {high:.6g}")
    norms = perturbation_norms(x, x_adv, norm)
    worst = norms.max().item() if len(norms) else 0.0
    if worst > eps + TOLERANCE:
        bad = int((norms > eps + TOLERANCE).sum())
        raise ThreatModelViolation(
            f"{bad} example(s) exceed the {norm} budget: max norm {worst:.6g} > eps {eps:.6g}"
        )


def within_budget(x, x_adv, eps_list, norm) -> list[torch.Tensor]:
    """Minimal-perturbation attacks: keep x_adv where its norm is within eps, else the clean x."""
    norms = perturbation_norms(x, x_adv, norm)
    shape = (-1, *([1] * (x.dim() - 1)))
    return [torch.where((norms <= eps).view(shape), x_adv, x) for eps in eps_list]
