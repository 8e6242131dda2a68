"""Attacks of robbench: registry, torchattacks/foolbox backends, batched EOT, diagnostics."""

from robbench.attacks.registry import ATTACKS, attack_params, craft, get_attack
from robbench.attacks.threat_model import ThreatModelViolation, check_threat_model

__all__ = ["ATTACKS", "ThreatModelViolation", "attack_params", "check_threat_model", "craft",
           "get_attack"]
