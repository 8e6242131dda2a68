"""The leaderboard's files: the full table (Markdown, CSV), the summary a README quotes, and the
tables and notes of its HTML page (`robbench report D.csv`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robbench.atomic_write import atomic_write_text
from robbench.attacks.budgets import eps_key
from robbench.report.diagnostics_table import masking_warning
from robbench.report.leaderboard import coverage, leaderboard_entries, leaderboard_frame
from robbench.report.tables import format_accuracy


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


def leaderboard_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's rows as a person reads them: percentages with their intervals, the
    attacks a worst case counts, what naive evaluation overstates, the diagnostics' FAILs."""
    rows = [row for _, row in frame.iterrows()]
    return pd.DataFrame({
        "model": frame["model"], "ε": frame["eps"].map(lambda e: f"{e:g}"),
        "random": frame["random"].map(lambda r: "yes" if r else "no"),
        "R": frame["draws"],
        "clean": [_pct(r, "clean_expected") for r in rows],
        "naive PGD-40": [_pct(r, "pgd_expected") for r in rows],
        "AutoAttack-rand (authors' code)": [_reference_cell(r) for r in rows],
        "worst case": [_pct(r, "worst_expected") for r in rows],
        "worst case majority": [_pct(r, "worst_majority") for r in rows],
        "worst case all-draws": [_pct(r, "worst_all_draws") for r in rows],
        "attacks": [coverage(r["attacks"], r["eps"], r["random"]) for r in rows],
        "overstated by": [f"{_points(r['overstated_expected'])} / "
                          f"{_points(r['overstated_all_draws'])}" for r in rows],
        "diagnostics": [r["diagnostics"] + (f"; FAIL: {r['fails']}" if r["fails"] else "")
                        for r in rows],
        "literature": frame["verdict"],
    })


def leaderboard_warnings(frame: pd.DataFrame) -> list[str]:
    """The loud paragraph of each model whose gradient vanishes (its diagnostics' FAILs)."""
    warnings = []
    for model, fails in frame.drop_duplicates("model")[["model", "fails"]].itertuples(
            index=False):
        checks = [f.rsplit(" (", 1)[0] for f in fails.split("; ")] if fails else []
        failed = pd.DataFrame({"model": model, "check": checks, "status": "FAIL"})
        warnings.append(masking_warning(failed))
    return [w for w in warnings if w]


def leaderboard_markdown(frame: pd.DataFrame, dataset: str) -> str:
    """The leaderboard as Markdown: every warning, the table, then what its columns mean."""
    n = int(frame["n"].iloc[0])
    text = (f"# Leaderboard: {dataset}\n\nFirst {n} test images, L∞; every accuracy with its "
            "95% interval, a random model's scored by R fresh passes of each example.\n\n")
    text += "".join(f"{w}\n" for w in leaderboard_warnings(frame))
    return text + leaderboard_table(frame).to_markdown(index=False) + "\n\n" + COLUMN_NOTES


COLUMN_NOTES = """\
- **random**: two passes on the same inputs differed (runs older than that check: the model
  was evaluated as random); **R**: the fresh passes scoring each example.
- **naive PGD-40**: PGD-40 with one noise draw per step and no BPDA, as many papers ran it.
- **AutoAttack-rand (authors' code)**: AutoAttack's `rand` version (APGD-CE and APGD-DLR,
  EOT 20) through Croce & Hein's own package (`--backend autoattack`), its adversarial examples
  scored by robbench's R passes; run where the headline runs it (ε = 0.1 and 0.3; '-'
  elsewhere). Where it covers fewer images than the row, the cell names them and "overstated
  by" leaves it out. robbench's own implementation is one of the worst case's attacks.
- **worst case**: over the headline's L∞ protocol (FGSM, PGD-40, EOT-PGD with draws chosen by
  convergence, APGD-CE, AutoAttack-rand, AutoAttack's standard version on a deterministic model,
  Square, transfer from the ConvNet), the attacker's strategy (each example's strongest attack,
  or one attack alone) chosen on independent selection passes and scored on the R fresh ones;
  *expected* is the chance one query is answered correctly, *majority* a vote of the R passes,
  *all-draws* every pass correct.
- **attacks**: how many of the protocol's attacks at that ε the worst case counts (APGD-CE,
  AutoAttack-rand, AutoAttack and Square run at ε = 0.1 and 0.3 only, as in the headline); a
  reduced grid, or an attack run on fewer images than the row, names those it lacks.
- **overstated by**: the higher naive number (on the row's images) minus the worst case, in
  points (expected / all-draws).
- **diagnostics**: the gradient-masking checklist of Carlini et al. (2019), PASS count and
  every FAIL; "binarization test inconclusive" where no valid construction could be built for
  the active test (Zimmermann et al. 2022), so it neither passed nor failed.
"""


def column_notes() -> list[str]:
    """What each column of the full table means, one Markdown sentence or few per column."""
    items = COLUMN_NOTES.strip().removeprefix("- ").split("\n- ")
    return [" ".join(line.strip() for line in item.splitlines()) for item in items]


def leaderboard_summary(frame: pd.DataFrame, dataset: str) -> str:
    """The summary as Markdown: what it shows, then its table."""
    preamble, table = summary_table(frame, dataset)
    return preamble + "\n\n" + table.to_markdown(index=False, disable_numparse=True) + "\n"


def summary_table(frame: pd.DataFrame, dataset: str) -> tuple[str, pd.DataFrame]:
    """The leaderboard in the few cells a README quotes, one row per model: clean accuracy;
    per budget, the higher naive number, robbench's worst case (expected) and what naive
    overstates; the all-draws worst case; the diagnostics' verdict. (What the table shows, in
    a sentence or three; the table.) The full table is ``<dataset>.md``."""
    def naive(row: pd.Series) -> str:
        same = [("", row["pgd_expected"])] + (
            [("†", row["aa_ref_expected"])] if row["aa_ref_n"] == row["n"] else [])
        mark, value = max(same, key=lambda kv: -1.0 if kv[1] != kv[1] else kv[1])
        return "-" if value != value else f"{100 * value:.1f}%{mark}"

    def reduced(row: pd.Series) -> str:
        return "‡" if "w/o" in coverage(row["attacks"], row["eps"], row["random"]) else ""

    def budget(row: pd.Series) -> str:
        worst = row["worst_expected"]
        if worst != worst:
            return "-"
        return (f"{naive(row)} → {100 * worst:.1f}%{reduced(row)} "
                f"({_points(row['overstated_expected'])})")

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
                               f"{reduced(pd.Series(at[eps_key(e)]))}"
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
    grid = (" ‡ a reduced grid: the worst case lacks attacks of the protocol (the table's "
            "attacks column names them), so it may overstate robustness."
            if any(reduced(r) for _, r in frame.iterrows()) else "")
    return (f"{images}, L∞ ε = {budgets}. Each ε: the higher naive number "
            f"(PGD-40 with one draw per step; † the authors' AutoAttack-rand) → robbench's "
            f"per-example worst case (expected accuracy), and by how many points naive "
            f"overstates it; all-draws is the worst case against an attacker who may resubmit "
            f"(one value per ε).{grid} Every interval, metric and FAIL: "
            f"`results/leaderboard/{dataset}.md`."), table


def leaderboard_csv(frame: pd.DataFrame) -> str:
    """Every column of the rows, numbers unrounded (so that a page rendered from the file
    rounds them exactly as the Markdown does)."""
    return frame.to_csv(index=False)


LEADERBOARD_COLUMNS = frozenset(("model", "eps", "n", "random", "draws", "attacks", "aa_ref_n",
                                 "worst_expected", "diagnostics", "fails", "verdict"))


def read_leaderboard_csv(path: str | Path) -> pd.DataFrame | None:
    """The rows of a leaderboard CSV that ``robbench leaderboard`` wrote, or None for any other
    CSV."""
    frame = pd.read_csv(path)
    if not LEADERBOARD_COLUMNS <= set(frame.columns):
        return None
    text = ["attacks", "diagnostics", "fails", "verdict"]
    return frame.assign(**{c: frame[c].fillna("").astype(str) for c in text})


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
    texts = {out / f"{dataset}.md": leaderboard_markdown(frame, dataset),
             out / f"{dataset}.csv": leaderboard_csv(frame),
             out / f"{dataset}-summary.md": leaderboard_summary(frame, dataset)}
    changed = [p for p, t in texts.items() if not p.is_file() or p.read_text() != t]
    if not check:
        for path in changed:
            atomic_write_text(path, texts[path])
    return changed
