"""The headline's attack grid: which attacks run at which budgets, with what settings.

Kept apart from the headline's execution, so that what only reads the grid (the leaderboard's
attacks column) does not import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robbench.attacks import budgets


@dataclass(frozen=True)
class HeadlineRun:
    """One attack of the headline grid: its run directory name, eps and settings."""

    name: str
    eps: tuple[float, ...]
    params: dict[str, Any] = field(default_factory=dict)
    eot_sized: bool = False  # runs on the first n_eot images
    deterministic_only: bool = False  # skips random models (they get autoattack-rand)


def headline_runs(eot: int | str = 16) -> list[HeadlineRun]:
    """The protocol: FGSM, PGD-40 and EOT-PGD at L-inf 0.1/0.2/0.3; APGD, AutoAttack-rand and
    Square at 0.1/0.3, and AutoAttack's standard version there for the deterministic models
    (for a random model its authors quote the rand version); PGD-L2, EOT-PGD-L2 and CW-L2 at
    1/2; transfer from the other model."""
    return [
        HeadlineRun("pgd", budgets.LINF),
        HeadlineRun("fgsm", budgets.LINF),
        HeadlineRun("eot-pgd", budgets.LINF, {"eot": eot}, eot_sized=True),
        HeadlineRun("apgd", budgets.LINF_ENDS, eot_sized=True),
        HeadlineRun("autoattack-rand", budgets.LINF_ENDS, eot_sized=True),
        HeadlineRun("autoattack", budgets.LINF_ENDS, eot_sized=True, deterministic_only=True),
        HeadlineRun("square", budgets.LINF_ENDS, eot_sized=True),
        HeadlineRun("transfer", budgets.LINF),
        HeadlineRun("pgd-l2", budgets.L2_HEADLINE),
        HeadlineRun("eot-pgd-l2", budgets.L2_HEADLINE, {"eot": eot}, eot_sized=True),
        HeadlineRun("cw", budgets.L2_HEADLINE),
    ]


HEADLINE_NAMES = tuple(r.name for r in headline_runs())
