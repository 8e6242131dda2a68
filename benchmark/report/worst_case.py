"""The per-example worst case over attacks, chosen on selection passes, scored on fresh ones.

An example is robust only if it survives every attack run on it at that eps (as AutoAttack
counts). For a random model each attack's outcome on an example is itself random: choosing,
per example, the attack whose R scoring passes did worst and then reporting those same passes
is selection on noise, biased low. So robbench scores every adversarial example of a random
model twice, on independent passes, and decides on the *selection* passes (R_sel) only: per
example, the attack whose example did worst on them (ties to the attack strongest overall). With
few selection passes that choice is noisy: among attacks of like strength it picks a weaker one
on many examples, and always using the strongest attack would do better. So the attacker's
strategy is chosen on the selection passes too, per metric: the per-example choice, or one
attack alone, whichever does worst there (every strategy judged on half the selection passes,
the choice by cross-fitting: chosen on one half, scored on the other, both ways). The worst
case reports the chosen strategy's *evaluation* passes (R) in that metric: never a
minimum over the passes it reports. Cells written before robbench kept selection passes choose
on their evaluation passes: their rows say ``scoring = same-draws``. A deterministic model has
one pass, and the rule is exactly "survives every attack".

Where attacks at one eps ran on different numbers of examples there are three rows: every
attack, on the examples they all covered; the attacks that covered the largest n, on those;
and those same attacks on the first row's examples (``without`` names what a row leaves out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from robbench.records.scoring import METRICS, metric_fields, per_example
from robbench.records.store import OLD_SCORING, SCORING, RunStore, open_runs, record_key

WORST_CASE = "worst case"
"""The ``attack`` label of the per-example worst case over every attack run at one eps."""

WORST_CASE_COLUMNS = ["dataset", "model", "attack", "norm", "eps", "n", "correct", "accuracy",
                      "ci_low", "ci_high", "majority", "majority_low", "majority_high",
                      "all_draws", "all_draws_low", "all_draws_high", "draws", "stochastic",
                      "scoring", "attacks", "without"]


@dataclass
class CellOutcomes:
    """One attacked cell's per-example outcomes, as the worst case needs them."""

    attack: str
    index: np.ndarray  # test-image indices
    correct: np.ndarray  # (R, N) evaluation passes correct
    selection: np.ndarray  # (R_sel, N) passes to choose on: selection passes, else evaluation ones
    disjoint: bool  # the selection passes are independent of the evaluation ones


def first_images(outcomes: dict[str, np.ndarray], first: int | None) -> dict[str, np.ndarray]:
    """A cell's per-example outcomes restricted to test images with index below ``first``."""
    if first is None:
        return outcomes
    keep = outcomes["index"] < first
    out = {"index": outcomes["index"][keep], "label": outcomes["label"][keep],
           "pred": outcomes["pred"][:, keep]}
    if "sel_pred" in outcomes:
        out["sel_pred"] = outcomes["sel_pred"][:, keep]
    return out


def cell_outcomes(attack: str, outcomes: dict[str, np.ndarray]) -> CellOutcomes:
    correct = outcomes["pred"] == outcomes["label"][None]
    if "sel_pred" in outcomes:
        selection = outcomes["sel_pred"] == outcomes["label"][None]
        return CellOutcomes(attack, outcomes["index"], correct, selection, True)
    # one pass (deterministic: exact) or an older cell scored once (same draws)
    return CellOutcomes(attack, outcomes["index"], correct, correct, correct.shape[0] == 1)


def _groups(runs: Sequence[RunStore], first: int | None) -> dict[tuple, list[CellOutcomes]]:
    groups: dict[tuple, list[CellOutcomes]] = {}
    for run in runs:
        for rec in run.records():
            if rec["attack"] == "none" or rec.get("skipped"):
                continue
            key = (rec["dataset"], rec["model"], rec["norm"], float(rec["eps"]))
            out = first_images(run.outcomes(record_key(rec)), first)
            groups.setdefault(key, []).append(cell_outcomes(rec["attack"], out))
    return groups


def worst_case_scores(cells: Sequence[CellOutcomes], keep: Sequence[int],
                      all_draws_at: Sequence[int] = ()) -> dict[str, np.ndarray]:
    """Per example of ``keep`` (test-image indices), under every metric (and all-draws at each
    R in ``all_draws_at``): the evaluation scores of the attacker strategy the selection
    passes choose for that metric (the per-example choice, or one attack alone; module
    docstring)."""
    keep = [int(i) for i in keep]
    passes = [c.selection[:, [pos[i] for i in keep]] for c, pos in _positions(cells)]
    evaluation = [c.correct[:, [pos[i] for i in keep]] for c, pos in _positions(cells)]
    order = sorted(range(len(cells)), key=lambda k: (passes[k].mean(), cells[k].attack))
    passes, evaluation = [passes[k] for k in order], [evaluation[k] for k in order]
    choice = _choice(passes)
    strategies = [choice] + [np.full(len(keep), a) for a in range(len(cells))]
    judged = min(p.shape[0] for p in passes) >= 2 and all(c.disjoint for c in cells)
    scores = {}
    for metric in METRICS:
        pick = int(np.argmin(_half_pass_estimates(passes, metric))) if judged else 0
        columns = [evaluation[a][:, e] for e, a in enumerate(strategies[pick])]
        picked = _scores(columns, all_draws_at if metric == "all_draws" else ())
        scores.update({metric: picked[metric]} | {k: v for k, v in picked.items()
                                                  if k.startswith("all_draws@")})
    return scores


def _positions(cells: Sequence[CellOutcomes]) -> list[tuple[CellOutcomes, dict[int, int]]]:
    return [(c, {int(i): p for p, i in enumerate(c.index)}) for c in cells]


def _choice(passes: Sequence[np.ndarray]) -> np.ndarray:
    """Per example, the attack (index into ``passes``, strongest first) whose passes were
    correct least often; ties to the first."""
    return np.argmin(np.stack([p.mean(0) for p in passes]), axis=0)


def _half_pass_estimates(passes: Sequence[np.ndarray], metric: str) -> list[float]:
    """Each strategy's accuracy under ``metric`` on selection passes it was not chosen on,
    all on half of them so that they compare alike: the per-example choice made on one half
    and scored on the other, both ways, then every attack alone on each half; the mean of the
    two halves each."""
    half = min(p.shape[0] for p in passes) // 2
    halves = ([p[:half] for p in passes], [p[half:2 * half] for p in passes])
    cross = []
    for choose_on, score_on in (halves, halves[::-1]):
        chosen = _choice(choose_on)
        cross.append(np.mean([per_example(score_on[a][:, [e]], metric)[0]
                              for e, a in enumerate(chosen)]))
    alone = [np.mean([per_example(h[a], metric).mean() for h in halves])
             for a in range(len(passes))]
    return [float(np.mean(cross)), *map(float, alone)]


def _scores(columns: Sequence[np.ndarray], all_draws_at: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-example scores: ``columns`` holds each example's evaluation passes (correct or not)."""
    out: dict[str, list[float]] = {m: [] for m in METRICS} | {
        f"all_draws@{r}": [] for r in all_draws_at}
    for correct in columns:
        for metric in METRICS:
            out[metric].append(per_example(correct[:, None], metric)[0])
        for r in all_draws_at:
            out[f"all_draws@{r}"].append(float(correct[:r].all()) if len(correct) > r
                                         else np.nan)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def _tiers(cells: list[CellOutcomes]) -> list[tuple[list[CellOutcomes], set[int] | None]]:
    every = {c.attack for c in cells}
    largest = max(len(c.index) for c in cells)
    widest = [c for c in cells if len(c.index) == largest]
    widest_attacks = {c.attack for c in widest}
    smallest = set.intersection(*(set(c.index.tolist()) for c in cells))
    if len(widest) == len(cells) or len(widest_attacks) == 1:
        return [(cells, None)]  # one size, or the widest row would repeat one attack's own
    if widest_attacks == every:
        return [(widest, None)]  # the smaller cells repeat attacks that ran on more images
    return [(cells, None), (widest, None), (widest, smallest)]


def worst_case_frame(runs: Sequence[str | Path | RunStore], first: int | None = None,
                     all_draws_at: Sequence[int] = ()) -> pd.DataFrame:
    """Worst-case rows per (dataset, model, norm, eps) across every attack of ``runs``
    (summary-style, attack = ``"worst case"``); ``first`` counts only the first test images,
    ``all_draws_at`` adds all-draws columns at fewer passes (``all_draws@R``)."""
    rows = []
    for (dataset, model, norm, eps), cells in sorted(_groups(open_runs(runs), first).items()):
        every = {c.attack for c in cells}
        for tier, images in _tiers(cells):
            common = set.intersection(*(set(c.index.tolist()) for c in tier))
            keep = sorted(common if images is None else common & images)
            scores = worst_case_scores(tier, keep, all_draws_at)
            extra = {k: float(v.mean()) if len(v) else float("nan")
                     for k, v in scores.items() if k.startswith("all_draws@")}
            draws = min(c.correct.shape[0] for c in tier)
            attacks = sorted({c.attack for c in tier})
            rows.append({"dataset": dataset, "model": model, "attack": WORST_CASE, "norm": norm,
                         "eps": eps, **metric_fields(scores), **extra, "draws": draws,
                         "stochastic": max(c.correct.shape[0] for c in tier) > 1,
                         "scoring": SCORING if all(c.disjoint for c in tier) else OLD_SCORING,
                         "attacks": "+".join(attacks),
                         "without": "+".join(sorted(every - set(attacks)))})
    columns = WORST_CASE_COLUMNS + [f"all_draws@{r}" for r in all_draws_at]
    return pd.DataFrame(rows, columns=columns)


def every_attack_rows(worst: pd.DataFrame) -> pd.DataFrame:
    """Of :func:`worst_case_frame`'s rows, per (dataset, model, norm, eps) the one counting every
    attack."""
    return worst[worst["without"] == ""].reset_index(drop=True)


def widest_rows(worst: pd.DataFrame) -> pd.DataFrame:
    """Of :func:`worst_case_frame`'s rows, per (dataset, model, norm, eps) the one on the most
    examples, counting the most attacks there: where an attack ran on fewer images, the row on
    all of them leaves it out (``without`` names it) rather than shrink to the fewer."""
    keys = ["dataset", "model", "norm", "eps"]
    ranked = worst.assign(_left_out=worst["without"].map(lambda w: len(w.split("+")) if w else 0))
    ranked = ranked.sort_values([*keys, "n", "_left_out"], ascending=[True] * 4 + [False, True],
                                kind="stable")
    return ranked.drop_duplicates(keys).drop(columns="_left_out").reset_index(drop=True)


def worst_case_label(without: str) -> str:
    """The ``attack`` cell of a worst-case row in the merged table: what it leaves out, if any."""
    return WORST_CASE if not without else f"{WORST_CASE} w/o {without}"
