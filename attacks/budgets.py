"""Every default perturbation budget (eps, in pixel units of [0, 1] images), in one place."""

from __future__ import annotations

LINF = (0.1, 0.2, 0.3)
"""L-inf budgets of FGSM, PGD, EOT-PGD and transfer (the MNIST literature's grid)."""
LINF_ENDS = (0.1, 0.3)
"""L-inf budgets of the expensive attacks (APGD, AutoAttack-rand, Square) in the headline."""
L2 = (0.5, 1.0, 2.0)
"""L2 budgets of PGD-L2, EOT-PGD-L2 and CW-L2 in `robbench run`."""
L2_HEADLINE = (1.0, 2.0)
"""L2 budgets of the headline."""
L1 = (2.0, 5.0, 10.0)
"""L1 budgets of APGD-L1 and AutoAttack-L1 in `robbench run` (10 is the MNIST literature's)."""
DIAGNOSTIC_LINF = (0.05, 0.1, 0.2, 0.3)
"""The diagnostics' sweep: robust accuracy must not increase along it."""
DIAGNOSTIC_LARGE = (0.5, 1.0)
"""Budgets at which an attack that works reaches (near) 0%."""
DIAGNOSTIC_REFERENCE = 0.1
"""The budget of the diagnostics' convergence ladders and attack comparisons."""
THESIS_FGSM_PM1 = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06)
"""The thesis's FGSM budgets on its [-1, 1] image scale (half these in robbench's units)."""


def eps_key(eps: float) -> float:
    """A budget as tables compare it (rounded: stored floats need not equal exactly)."""
    return round(float(eps), 6)
