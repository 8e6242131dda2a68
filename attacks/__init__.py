"""Attacks of robbench: registry, own implementations, optional torchattacks/foolbox backends,
batched EOT and threat-model checks."""

from robbench.attacks.registry import ATTACKS, BACKENDS, attack_params, craft, get_attack
from robbench.attacks.target import Target
from robbench.attacks.threat_model import ThreatModelViolation, check_threat_model

__all__ = ["ATTACKS", "BACKENDS", "Target", "ThreatModelViolation", "attack_params",
           "check_threat_model", "craft", "get_attack"]
