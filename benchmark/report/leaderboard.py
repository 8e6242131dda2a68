"""The leaderboard of a dataset: one row per model and eps, from committed runs only (its files:
``leaderboard_tables``).

Per model: whether robbench detected randomness; clean accuracy; what a naive evaluation
reports (PGD-40 with one draw per step and no BPDA, and AutoAttack's ``rand`` version as its
authors' code runs it), each scored by robbench's R fresh passes; robbench's per-example worst
case over the headline's L-inf protocol in each metric (expected, majority, all-draws) with
95% intervals; the gradient-masking diagnostics (PASS count, every FAIL named); how much the
higher naive number overstates the worst case (expected and all-draws); and what the
literature concluded.

The undefended ConvNet and the Short Run classifier come from the dataset's headline runs
(``results/<dataset>/runs``), the defenses from ``results/leaderboard/runs/<dataset>/<model>``
(of several sizes, the one covering most images). Rows compare on the first n test images every
row's widest runs cover: an attack run on fewer is left out of that row's worst case, which
names it; the authors' AutoAttack-rand names its own n there and is left out of "overstated by".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from robbench.attacks.budgets import eps_key
from robbench.defenses.catalog import DEFENSES
from robbench.records.store import SUMMARY_COLUMNS, DirectoryStore, RunStore, open_runs, record_key
from robbench.report.tables import first_images_summary
from robbench.report.worst_case import widest_rows, worst_case_frame
from robbench.runs.config import run_complete
from robbench.studies.headline_protocol import headline_runs

LINF_ATTACKS = ("pgd", "fgsm", "eot-pgd", "apgd", "autoattack-rand", "autoattack", "square",
                "transfer")
REFERENCE_RUN = "autoattack-rand-reference"  # the authors' code: a naive column, not protocol
BASELINES = {
    "convnet": "undefended baseline",
    "shortrun": "robbench's deep generative classifier (Fischer 2020); not attacked in the "
                "literature",
}
METRICS = {"expected": ("accuracy", "ci_low", "ci_high"),
           "majority": ("majority", "majority_low", "majority_high"),
           "all-draws": ("all_draws", "all_draws_low", "all_draws_high")}


@dataclass
class Entry:
    """One model of the leaderboard: its runs, its diagnostics file, the literature's verdict."""

    model: str
    runs: list[RunStore]
    diagnostics: Path | None
    verdict: str
    reference: RunStore | None = None  # AutoAttack-rand through the authors' code


def leaderboard_entries(root: str | Path, dataset: str) -> list[Entry]:
    """The baselines of the dataset's headline and every defense with leaderboard runs and
    diagnostics (until they have run, a masked gradient could pass for robustness)."""
    root = Path(root)
    entries = []
    headline = root / "results" / dataset
    boards = root / "results" / "leaderboard" / "runs" / dataset
    for model, verdict in BASELINES.items():
        runs = [headline / "runs" / a for a in LINF_ATTACKS if (headline / "runs" / a).is_dir()]
        diag = headline / "diagnostics" / f"{dataset}-{model}" / "diagnostics.csv"
        stores = open_runs(runs) if runs else []
        if any(rec["model"] == model for run in stores for rec in run.records()):
            entries.append(Entry(model, stores, diag if diag.is_file() else None, verdict,
                                 reference_run(boards / model)))
    for model, entry in DEFENSES.items():
        base = largest_size(boards / model, "pgd")  # where its protocol ran
        if base is None:
            continue
        runs = [base / "runs" / a for a in LINF_ATTACKS if (base / "runs" / a / "cells").is_dir()]
        diag = base / "diagnostics" / f"{dataset}-{model}" / "diagnostics.csv"
        if runs and diag.is_file():
            entries.append(Entry(model, open_runs(runs), diag,
                                 entry.verdict, reference_run(boards / model)))
    return entries


def largest_size(model_root: Path, run: str | None = None) -> Path | None:
    """Of a model's size directories (``first-<n>``, ``all``), the one covering most images
    (of those holding the run ``run`` complete, if given)."""
    sizes = {p: float("inf") if p.name == "all" else int(p.name.removeprefix("first-"))
             for p in model_root.glob("*") if p.name == "all" or p.name.startswith("first-")}
    if run is not None:
        sizes = {p: n for p, n in sizes.items() if run_complete(DirectoryStore(p / "runs" / run))}
    return max(sizes, key=sizes.get) if sizes else None


def reference_run(model_root: Path) -> RunStore | None:
    """The model's AutoAttack-rand through the authors' code, of the size covering most."""
    base = largest_size(model_root, REFERENCE_RUN)
    return None if base is None else open_runs([base / "runs" / REFERENCE_RUN])[0]


def common_first(entries: list[Entry]) -> int:
    """The n every entry covers: of each entry's largest finished cell, the smallest (an
    attack run on fewer images is left out of its rows' worst case, which names it)."""
    sizes = [n for e in entries if (n := max((len(run.outcomes(record_key(rec))["index"])
             for run in e.runs for rec in run.records()
             if rec["model"] == e.model and not rec.get("skipped")), default=0))]
    if not sizes:
        raise ValueError("no finished cells to rank")
    return min(sizes)


def _fields(row: pd.Series | None, metric: str) -> tuple[float, float, float]:
    return (float("nan"),) * 3 if row is None else tuple(float(row[f]) for f in METRICS[metric])


def diagnostics_summary(path: Path | None, model: str) -> tuple[str, str]:
    """("k/m PASS", the FAILs named) of a diagnostics file, or ("-", "") without one; an
    active test that could not be built (INFO, inconclusive) is named beside the count, since
    the count alone would read as if it had passed."""
    if path is None:
        return "-", ""
    frame = pd.read_csv(path, keep_default_na=False, na_values={"eps": [""]})
    graded = frame[frame["status"].isin(["PASS", "FAIL"])]
    fails = graded[graded["status"] == "FAIL"]
    named = "; ".join(dict.fromkeys(
        f"{r.check} ({r.attack}" + ("" if pd.isna(r.eps) else f", eps {r.eps:g}") + ")"
        for r in fails.itertuples()))
    detail = frame.get("detail", pd.Series("", index=frame.index)).astype(str)
    open_rows = frame[(frame["status"] == "INFO") & detail.str.startswith("inconclusive")]
    count = f"{int((graded['status'] == 'PASS').sum())}/{len(graded)} PASS"
    for check in dict.fromkeys(open_rows["check"]):
        count += f", {check.split(' (')[0]} inconclusive"
    return count, named


def entry_rows(entry: Entry, first: int, eps_list: tuple[float, ...]) -> list[dict]:
    """The leaderboard's numeric rows of one model, one per eps."""
    summary = pd.concat([first_images_summary(run, first) for run in entry.runs],
                        ignore_index=True)
    summary = summary[summary["model"] == entry.model]
    worst = widest_rows(worst_case_frame(entry.runs, first))
    worst = worst[worst["model"] == entry.model]
    meta = entry.runs[0].read_meta().get("models", {}).get(entry.model, {})
    clean = summary[summary["attack"] == "none"].head(1)
    passed, fails = diagnostics_summary(entry.diagnostics, entry.model)
    reference, reference_n = reference_summary(entry, first)
    rows = []
    for eps in map(eps_key, eps_list):
        def cell(attack: str, eps=eps, summary=summary) -> pd.Series | None:
            hit = summary[(summary["attack"] == attack) & (summary["eps"].map(eps_key) == eps)]
            return None if hit.empty else hit.iloc[0]
        wrow = worst[worst["eps"].map(eps_key) == eps]
        row = {"model": entry.model, "eps": eps, "n": first,
               "random": bool(meta["detected"]) if "detected" in meta
               else bool(summary["stochastic"].fillna(False).astype(bool).any()),
               "draws": int(clean.iloc[0]["draws"]) if not clean.empty else 0,
               "attacks": "" if wrow.empty else wrow.iloc[0]["attacks"],
               "aa_ref_n": reference_n}
        for label, frame_row in (("clean", None if clean.empty else clean.iloc[0]),
                                 ("pgd", cell("pgd")),
                                 ("aa_ref", cell("autoattack-rand", summary=reference)),
                                 ("worst", None if wrow.empty else wrow.iloc[0])):
            for metric in METRICS:
                value, low, high = _fields(frame_row, metric)
                key = f"{label}_{metric.replace('-', '_')}"
                row.update({key: value, f"{key}_low": low, f"{key}_high": high})
        for metric in ("expected", "all_draws"):
            same_images = [row[f"pgd_{metric}"]] + (
                [row[f"aa_ref_{metric}"]] if reference_n == first else [])
            row[f"overstated_{metric}"] = pd.Series(same_images).max() - row[f"worst_{metric}"]
        row.update({"diagnostics": passed, "fails": fails, "verdict": entry.verdict})
        rows.append(row)
    return rows


def reference_summary(entry: Entry, first: int) -> tuple[pd.DataFrame, int]:
    """The authors' AutoAttack-rand of ``entry`` on the table's first ``first`` images, or on
    all it covers where that is fewer; (its summary rows, their n; 0 without such a run)."""
    if entry.reference is None:
        return pd.DataFrame(columns=SUMMARY_COLUMNS), 0
    covered = [len(entry.reference.outcomes(record_key(rec))["index"])
               for rec in entry.reference.records()
               if rec["model"] == entry.model and not rec.get("skipped")]
    n = min([first, *covered])
    summary = first_images_summary(entry.reference, n)
    return summary[summary["model"] == entry.model], n


def leaderboard_frame(entries: list[Entry], eps_list: tuple[float, ...],
                      first: int | None = None) -> pd.DataFrame:
    """Every entry's rows, numbers as fractions, on the first ``first`` test images (default:
    the n all entries cover)."""
    first = first or common_first(entries)
    return pd.DataFrame([r for e in entries for r in entry_rows(e, first, eps_list)])


def protocol_attacks(eps: float, random: bool) -> list[str]:
    """The L-inf attacks the headline's protocol runs at ``eps`` on a model (APGD,
    AutoAttack-rand, AutoAttack and Square run at the ends of the range only, AutoAttack's
    standard version on deterministic models only)."""
    return [r.name for r in headline_runs() if r.name in LINF_ATTACKS
            and any(abs(e - eps) < 1e-9 for e in r.eps)
            and not (random and r.deterministic_only)]


def coverage(attacks: str, eps: float, random: bool) -> str:
    """How many of the protocol's attacks at ``eps`` a worst case counts, naming those it
    lacks."""
    done = set(attacks.split("+")) if attacks else set()
    expected = protocol_attacks(eps, random)
    missing = [a for a in expected if a not in done]
    count = f"{len(expected) - len(missing)}/{len(expected)}"
    return count if not missing else f"{count}, w/o {', '.join(missing)}"
