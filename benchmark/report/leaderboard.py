"""The leaderboard of a dataset: one row per model and eps, from committed runs only.

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

from robbench.atomic_write import atomic_write_text
from robbench.attacks.budgets import eps_key
from robbench.defenses.catalog import DEFENSES
from robbench.records.store import SUMMARY_COLUMNS, DirectoryStore, RunStore, open_runs, record_key
from robbench.report.diagnostics_table import masking_warning
from robbench.report.tables import first_images_summary, format_accuracy
from robbench.report.worst_case import widest_rows, worst_case_frame
from robbench.runs.config import run_complete
from robbench.studies.headline import headline_runs

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
    """("k/m PASS", the FAILs named) of a diagnostics file, or ("-", "") without one."""
    if path is None:
        return "-", ""
    frame = pd.read_csv(path)
    graded = frame[frame["status"].isin(["PASS", "FAIL"])]
    fails = graded[graded["status"] == "FAIL"]
    named = "; ".join(dict.fromkeys(
        f"{r.check} ({r.attack}" + ("" if pd.isna(r.eps) else f", eps {r.eps:g}") + ")"
        for r in fails.itertuples()))
    return f"{int((graded['status'] == 'PASS').sum())}/{len(graded)} PASS", named


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


def _pct(row: pd.Series, key: str) -> str:
    return format_accuracy(row[key], row[f"{key}_low"], row[f"{key}_high"])


def _reference_cell(row: pd.Series) -> str:
    """The authors' AutoAttack-rand, naming its n where it covers fewer images than the row."""
    text = _pct(row, "aa_ref_expected")
    if text == "-" or row["aa_ref_n"] == row["n"]:
        return text
    return f"{text} (first {row['aa_ref_n']})"


def _points(value: float) -> str:
    return "-" if value != value else f"{100 * value:+.1f}"


def leaderboard_markdown(frame: pd.DataFrame, entries: list[Entry], dataset: str) -> str:
    """The leaderboard as Markdown: the table, then what its columns mean and every warning."""
    shown = pd.DataFrame({
        "model": frame["model"], "ε": frame["eps"].map(lambda e: f"{e:g}"),
        "random": frame["random"].map(lambda r: "yes" if r else "no"),
        "R": frame["draws"],
        "clean": [_pct(r, "clean_expected") for _, r in frame.iterrows()],
        "naive PGD-40": [_pct(r, "pgd_expected") for _, r in frame.iterrows()],
        "AutoAttack-rand (authors' code)": [_reference_cell(r) for _, r in frame.iterrows()],
        "worst case": [_pct(r, "worst_expected") for _, r in frame.iterrows()],
        "worst case majority": [_pct(r, "worst_majority") for _, r in frame.iterrows()],
        "worst case all-draws": [_pct(r, "worst_all_draws") for _, r in frame.iterrows()],
        "attacks": [coverage(r["attacks"], r["eps"], r["random"]) for _, r in frame.iterrows()],
        "overstated by": [f"{_points(r['overstated_expected'])} / "
                          f"{_points(r['overstated_all_draws'])}" for _, r in frame.iterrows()],
        "diagnostics": [r["diagnostics"] + (f"; FAIL: {r['fails']}" if r["fails"] else "")
                        for _, r in frame.iterrows()],
        "literature": frame["verdict"],
    })
    n = int(frame["n"].iloc[0])
    text = (f"# Leaderboard: {dataset}\n\nFirst {n} test images, L∞; every accuracy with its "
            "95% interval, a random model's scored by R fresh passes of each example.\n\n")
    warnings = [masking_warning(pd.read_csv(e.diagnostics).assign(model=e.model))
                for e in entries if e.diagnostics is not None]
    text += "".join(f"{w}\n" for w in warnings if w)
    text += shown.to_markdown(index=False) + "\n\n" + COLUMN_NOTES
    return text


COLUMN_NOTES = """\
- **random**: two passes on the same inputs differed (runs older than that check: the model
  was evaluated as random); **R**: the fresh passes scoring each example.
- **naive PGD-40**: PGD-40 with one noise draw per step and no BPDA, as many papers ran it.
- **AutoAttack-rand (authors' code)**: AutoAttack's `rand` version (APGD-CE and APGD-DLR,
  EOT 20) through Croce & Hein's own package (`--backend autoattack`), its adversarial examples
  scored by robbench's R passes; run where the headline runs it (ε = 0.1 and 0.3; '-'
  elsewhere). Where it covers fewer images than the row, the cell names them and "overstated
  by" leaves it out. robbench's own implementation is one of the worst case's attacks.
- **worst case**: per example, the attack of the headline's L∞ protocol (FGSM, PGD-40, EOT-PGD
  with draws chosen by convergence, APGD-CE, AutoAttack-rand, AutoAttack's standard version on
  a deterministic model, Square, transfer from the ConvNet) that did worst on independent
  selection passes; *expected* is the chance one query is answered correctly, *majority* a
  vote of the R passes, *all-draws* every pass correct.
- **attacks**: how many of the protocol's attacks at that ε the worst case counts (APGD-CE,
  AutoAttack-rand, AutoAttack and Square run at ε = 0.1 and 0.3 only, as in the headline); a
  reduced grid, or an attack run on fewer images than the row, names those it lacks.
- **overstated by**: the higher naive number (on the row's images) minus the worst case, in
  points (expected / all-draws).
- **diagnostics**: the gradient-masking checklist of Carlini et al. (2019), PASS count and
  every FAIL.
"""


def leaderboard_summary(frame: pd.DataFrame, dataset: str) -> str:
    """The leaderboard in the few cells a README quotes, one row per model: clean accuracy;
    per budget, the higher naive number, robbench's worst case (expected) and what naive
    overstates; the all-draws worst case; the diagnostics' verdict. The full table is
    ``<dataset>.md``."""
    def naive(row: pd.Series) -> str:
        same = [("", row["pgd_expected"])] + (
            [("†", row["aa_ref_expected"])] if row["aa_ref_n"] == row["n"] else [])
        mark, value = max(same, key=lambda kv: -1.0 if kv[1] != kv[1] else kv[1])
        return "-" if value != value else f"{100 * value:.1f}%{mark}"

    def budget(row: pd.Series) -> str:
        worst = row["worst_expected"]
        if worst != worst:
            return "-"
        return (f"{naive(row)} → {100 * worst:.1f}% ({_points(row['overstated_expected'])})")

    def verdict(row: pd.Series) -> str:
        fails = row["fails"].count("; ") + 1 if row["fails"] else 0
        return row["diagnostics"] if not fails else f"{fails} FAIL"

    eps_list = sorted(frame["eps"].unique())
    rows = []
    for model, group in frame.groupby("model", sort=False):
        at = {eps_key(e): r for e, r in zip(group["eps"], group.to_dict("records"),
                                            strict=True)}
        cells = {f"ε = {e:g}": budget(pd.Series(at[eps_key(e)])) if eps_key(e) in at else "-"
                 for e in eps_list}
        all_draws = " / ".join(f"{100 * at[eps_key(e)]['worst_all_draws']:.1f}%"
                               if eps_key(e) in at else "-" for e in eps_list)
        first = group.iloc[0]
        rows.append({"model": model, "n": int(group["n"].max()),
                     "clean": f"{100 * first['clean_expected']:.1f}%", **cells,
                     "all-draws": all_draws, "diagnostics": verdict(first)})
    table = pd.DataFrame(rows)
    if frame["n"].nunique() == 1:
        table = table.drop(columns="n")
        images = f"First {int(frame['n'].iloc[0])} test images"
    else:
        table["n"] = table["n"].astype(str)
        images = "The first n test images"
    budgets = ", ".join(f"{e:g}" for e in eps_list)
    return (f"{images}, L∞ ε = {budgets}. Each ε: the higher naive number "
            f"(PGD-40 with one draw per step; † the authors' AutoAttack-rand) → robbench's "
            f"per-example worst case (expected accuracy), and by how many points naive "
            f"overstates it; all-draws is the worst case against an attacker who may resubmit "
            f"(one value per ε). Every interval, metric and FAIL: "
            f"`results/leaderboard/{dataset}.md`.\n\n"
            + table.to_markdown(index=False, disable_numparse=True) + "\n")


def leaderboard_csv(frame: pd.DataFrame) -> str:
    return frame.round(4).to_csv(index=False)


def write_leaderboard(root: str | Path, dataset: str, eps_list: tuple[float, ...],
                      check: bool = False) -> list[Path]:
    """results/leaderboard/<dataset>.md, .csv and -summary.md from the committed runs; with
    ``check`` only the files that differ from their regeneration are returned (nothing is
    written)."""
    entries = leaderboard_entries(root, dataset)
    if not entries:
        raise ValueError(f"no committed runs for dataset {dataset!r} under {root}")
    frame = leaderboard_frame(entries, eps_list)
    out = Path(root) / "results" / "leaderboard"
    texts = {out / f"{dataset}.md": leaderboard_markdown(frame, entries, dataset),
             out / f"{dataset}.csv": leaderboard_csv(frame),
             out / f"{dataset}-summary.md": leaderboard_summary(frame, dataset)}
    changed = [p for p, t in texts.items() if not p.is_file() or p.read_text() != t]
    if not check:
        for path in changed:
            atomic_write_text(path, texts[path])
    return changed
