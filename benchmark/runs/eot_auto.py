"""EOT by convergence (``--eot auto``): as many noise draws per gradient as the model needs.

On a calibration subset the attack's robust accuracy is measured with M = 1, 4, 16, 64, ...
draws per gradient; M grows fourfold until the accuracy changes by less than the previous
rung's 95% interval half-width (or reaches the cap, which the record says). The larger M of
that last pair is the choice: averaging more draws no longer strengthens the attack beyond
what the calibration can resolve. A model whose noise needs hundreds of draws (score-based
purification, Croce et al. 2022) climbs further than one whose chain gradient is informative
with a few.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

CALIBRATION_EXAMPLES = 100
EOT_CAP = 256
FACTOR = 4


@dataclass(frozen=True)
class Rung:
    eot: int
    accuracy: float
    half_width: float


def eot_ladder(cap: int = EOT_CAP, factor: int = FACTOR) -> list[int]:
    """1, 4, 16, ... up to ``cap`` (the cap itself is the last rung)."""
    ladder, m = [], 1
    while m < cap:
        ladder.append(m)
        m *= factor
    return ladder + [cap]


def choose_eot(measure: Callable[[int], tuple[float, float]], cap: int = EOT_CAP,
               factor: int = FACTOR) -> dict:
    """Climb the ladder; ``measure(M)`` returns (robust accuracy, interval half-width) of the
    attack with M draws. Returns the record: ladder, chosen M, whether the cap was hit."""
    rungs: list[Rung] = []
    for m in eot_ladder(cap, factor):
        accuracy, half_width = measure(m)
        rungs.append(Rung(m, accuracy, half_width))
        if len(rungs) > 1 and abs(accuracy - rungs[-2].accuracy) < rungs[-2].half_width:
            return _record(rungs, capped=False)
    return _record(rungs, capped=True)


def _record(rungs: list[Rung], capped: bool) -> dict:
    return {"chosen": rungs[-1].eot, "capped": capped,
            "ladder": [{"eot": r.eot, "accuracy": r.accuracy, "half_width": r.half_width}
                       for r in rungs]}
