"""Comparison tables: models side by side, attacks and eps as rows (Markdown, CSV, LaTeX).

:func:`comparison_table` renders one summary frame; :func:`results_table` (``robbench table``)
merges runs and adds the per-example worst case over attacks and the diagnostics' pass/fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

FORMATS = ("md", "csv", "latex")


def format_accuracy(row: pd.Series) -> str:
    return f"{100 * row['accuracy']:.1f}% [{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]"


def _per_model(values: pd.Series) -> str:
    distinct = list(dict.fromkeys(int(v) for v in values))
    return str(distinct[0]) if len(distinct) == 1 else "/".join(str(int(v)) for v in values)


def comparison_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, attack, norm, eps, steps, eot, n), one column per model.

    Where the models ran different EOT sample counts (a deterministic model always runs one),
    ``eot`` lists them in column order, e.g. ``1/16``.
    """
    if summary.empty:
        return pd.DataFrame()
    frame = summary.sort_values("model").copy()
    frame["cell"] = frame.apply(format_accuracy, axis=1)
    frame["eot"] = frame.groupby(["dataset", "attack", "eps", "steps", "n"])["eot"].transform(
        _per_model)
    index = ["dataset", "attack", "norm", "eps", "steps", "eot", "n"]
    wide = frame.pivot_table(index=index, columns="model", values="cell", aggfunc="first")
    wide = wide.reset_index()
    wide.columns.name = None
    order = {"none": 0}
    wide["_order"] = wide["attack"].map(lambda a: order.get(a, 1))
    wide = wide.sort_values(["dataset", "_order", "attack", "eps"]).drop(columns="_order")
    return wide.reset_index(drop=True)


def comparison_table(summary: pd.DataFrame, fmt: str = "md") -> str:
    """Render the side-by-side comparison of a summary frame in ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is unknown; allowed: {', '.join(FORMATS)}")
    wide = comparison_frame(summary)
    if wide.empty:
        return "(no finished cells)\n"
    if fmt == "csv":
        return wide.to_csv(index=False)
    if fmt == "latex":
        return wide.to_latex(index=False, escape=True)
    return wide.to_markdown(index=False) + "\n"


WORST_CASE = "worst case"
"""The ``attack`` label of the per-example worst case over every attack run at one eps."""


def worst_case_frame(run_dirs: Sequence[str | Path], first: int | None = None) -> pd.DataFrame:
    """Worst-case robust accuracy per (dataset, model, norm, eps) across every attack run on it.

    Computed per example, as AutoAttack counts: an example is robust only if it survives every
    attack. For a stochastic model with R draws an example's score under one attack is the
    fraction of its R draws classified correctly; its worst-case score is the minimum of that
    fraction over the attacks, and the worst-case accuracy is the mean of those minima (for a
    deterministic model, R = 1, this is exactly "survives every attack"). Only examples that
    every attack covered count; cells of several runs are merged. The interval is the 95% Wilson
    interval at that n. Returns summary-style rows (attack = ``"worst case"``).

    Where attacks at one eps ran on different numbers of examples (expensive ones on fewer), there
    are three rows: every attack, on the examples they all covered (the smallest n); the attacks
    that covered the largest n, on those, which keeps the precision of the cheap attacks; and those
    same attacks on the smallest n's examples, which shows what the expensive attacks add on the
    same images. ``without`` names the attacks a row leaves out (empty: every attack). A largest n
    that a single attack covered adds no rows: they would repeat that attack's own. ``first``
    counts only the first ``first`` test images.
    """
    from robbench.evaluation import wilson_interval
    from robbench.run_grid import cell_id, load_outcomes, read_cells

    groups: dict[tuple, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    for run in run_dirs:
        for rec in read_cells(Path(run)):
            if rec["attack"] == "none":
                continue
            key = (rec["dataset"], rec["model"], rec["norm"], float(rec["eps"]))
            out = first_images(load_outcomes(Path(run), cell_id(rec["model"], rec["attack"],
                                                                rec["eps"])), first)
            score = (out["pred"] == out["label"][None]).mean(0)
            groups.setdefault(key, []).append((rec["attack"], out["index"], score))
    rows = []
    for (dataset, model, norm, eps), cells in sorted(groups.items()):
        every = {attack for attack, _, _ in cells}
        largest = max(len(index) for _, index, _ in cells)
        widest = [cell for cell in cells if len(cell[1]) == largest]
        widest_attacks = {a for a, _, _ in widest}
        first = set.intersection(*(set(index.tolist()) for _, index, _ in cells))
        if len(widest) == len(cells):
            tiers = [(cells, None)]
        elif widest_attacks == every:
            tiers = [(widest, None)]  # the smaller cells repeat attacks that ran on more images
        elif len(widest_attacks) == 1:
            tiers = [(cells, None)]  # the widest row would repeat that attack's own
        else:
            tiers = [(cells, None), (widest, None), (widest, first)]
        for tier, images in tiers:
            attacks = sorted({attack for attack, _, _ in tier})
            common = set.intersection(*(set(index.tolist()) for _, index, _ in tier))
            keep = sorted(common if images is None else common & images)
            scores = [dict(zip(index.tolist(), score.tolist(), strict=True))
                      for _, index, score in tier]
            worst = np.array([min(s[i] for s in scores) for i in keep])
            n = len(worst)
            acc = float(worst.mean()) if n else float("nan")
            low, high = wilson_interval(acc * n, n) if n else (float("nan"), float("nan"))
            rows.append({"dataset": dataset, "model": model, "attack": WORST_CASE, "norm": norm,
                         "eps": eps, "n": n, "correct": acc * n, "accuracy": acc,
                         "ci_low": low, "ci_high": high, "attacks": "+".join(attacks),
                         "without": "+".join(sorted(every - set(attacks)))})
    return pd.DataFrame(rows, columns=WORST_CASE_COLUMNS)


def first_images(outcomes: dict[str, np.ndarray], first: int | None) -> dict[str, np.ndarray]:
    """A cell's per-example outcomes restricted to test images with index below ``first``."""
    if first is None:
        return outcomes
    keep = outcomes["index"] < first
    return {"index": outcomes["index"][keep], "label": outcomes["label"][keep],
            "pred": outcomes["pred"][:, keep]}


def first_images_summary(run_dir: str | Path, first: int) -> pd.DataFrame:
    """A run's summary as if every cell had run on its first ``first`` test images only:
    accuracy, n and interval recomputed from the per-example outcomes."""
    import torch

    from robbench.evaluation import accuracy_fields
    from robbench.run_grid import SUMMARY_COLUMNS, cell_id, load_outcomes, read_cells

    rows = []
    for rec in read_cells(Path(run_dir)):
        out = first_images(load_outcomes(Path(run_dir), cell_id(rec["model"], rec["attack"],
                                                                 rec["eps"])), first)
        rows.append({**rec, **accuracy_fields(torch.from_numpy(out["pred"]),
                                              torch.from_numpy(out["label"]))})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


WORST_CASE_COLUMNS = ("dataset", "model", "attack", "norm", "eps", "n", "correct", "accuracy",
                      "ci_low", "ci_high", "attacks", "without")


def every_attack_rows(worst: pd.DataFrame) -> pd.DataFrame:
    """Of :func:`worst_case_frame`'s rows, per (dataset, model, norm, eps) the one counting every
    attack."""
    return worst[worst["without"] == ""].reset_index(drop=True)


def worst_case_label(without: str) -> str:
    """The ``attack`` cell of a worst-case row in the merged table: what it leaves out, if any."""
    return WORST_CASE if not without else f"{WORST_CASE} w/o {without}"


def worst_case_wide(worst: pd.DataFrame) -> pd.DataFrame:
    """:func:`worst_case_frame`'s rows with the models side by side, labelled by
    :func:`worst_case_label`, with the attacks each row counts."""
    worst = worst.assign(cell=worst.apply(format_accuracy, axis=1),
                         label=worst["without"].map(worst_case_label))
    wide = worst.pivot_table(index=["dataset", "label", "norm", "eps", "n", "attacks"],
                             columns="model", values="cell", aggfunc="first").reset_index()
    wide.columns.name = None
    return wide.rename(columns={"label": "attack"})


def find_diagnostics(run_dir: str | Path) -> Path | None:
    """``diagnostics.csv`` inside the run directory, or next to it (its parent), if present."""
    run_dir = Path(run_dir)
    for path in (run_dir / "diagnostics.csv", run_dir.parent / "diagnostics.csv"):
        if path.is_file():
            return path
    return None


DIAGNOSTIC_COLUMNS = ("source", "model", "check", "attack", "setting", "eps", "accuracy",
                      "status", "detail")


def diagnostics_frame(run_dirs: Sequence[str | Path],
                      extra: Sequence[str | Path] = ()) -> pd.DataFrame:
    """Every diagnostics.csv found for the runs, plus ``extra`` files (``robbench diagnose``
    output), with at least ``check`` and ``status``; ``source`` names the file's directory."""
    frames, seen = [], set()
    paths = [find_diagnostics(run) for run in run_dirs] + [Path(p) for p in extra]
    for path in paths:
        if path is None or path.resolve() in seen:
            continue
        if not path.is_file():
            raise FileNotFoundError(f"diagnostics file {path} does not exist")
        seen.add(path.resolve())
        frame = pd.read_csv(path)
        missing = {"check", "status"} - set(frame.columns)
        if missing:
            raise ValueError(f"{path} lacks column(s) {', '.join(sorted(missing))}; "
                             "need at least check, status")
        frames.append(frame.assign(source=path.parent.name))
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    frame["status"] = frame["status"].astype(str).str.upper()
    for col in ("accuracy", "eps"):
        if col in frame:
            frame[col] = frame[col].map(lambda v: "" if pd.isna(v) else f"{v:.3g}")
    frame = frame[[c for c in DIAGNOSTIC_COLUMNS if c in frame.columns]]
    return frame.drop_duplicates().reset_index(drop=True)


def results_frames(run_dirs: Sequence[str | Path], diagnostics: Sequence[str | Path] = (),
                   first: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The merged comparison (attack rows + worst-case rows) and diagnostics of several runs;
    ``first`` restricts every row to the first ``first`` test images, so that attacks run on
    different numbers of images compare on the same ones."""
    from robbench.run_grid import read_summary

    if not run_dirs:
        raise ValueError("no runs given")
    if first is not None and first < 1:
        raise ValueError(f"first {first} must be an integer >= 1")
    summary = pd.concat([read_summary(Path(r)) if first is None
                         else first_images_summary(r, first) for r in run_dirs],
                        ignore_index=True)
    summary = summary.drop_duplicates(
        subset=["dataset", "model", "checkpoint", "attack", "backend", "norm", "eps", "steps",
                "eot", "draws", "seed", "n"])
    wide = comparison_frame(summary)
    worst = worst_case_frame(run_dirs, first)
    if not worst.empty and not wide.empty:
        wrows = worst_case_wide(worst)
        wrows["steps"] = "-"
        wrows["eot"] = "-"
        wide = wide.astype({"steps": object, "eot": object})
        wide = pd.concat([wide, wrows[[c for c in wide.columns if c in wrows.columns]]],
                         ignore_index=True)
        worst_row = wide["attack"].str.startswith(WORST_CASE)
        rank = np.where(wide["attack"] == "none", 0, np.where(worst_row, 2, 1))
        group = wide["attack"].where(~worst_row, WORST_CASE)
        wide = (wide.assign(_rank=rank, _group=group)
                .sort_values(["dataset", "_rank", "_group", "eps", "attack", "n"], kind="stable")
                .drop(columns=["_rank", "_group"]).reset_index(drop=True))
    return wide.astype(object).fillna("-"), diagnostics_frame(run_dirs, diagnostics)


def results_table(run_dirs: Sequence[str | Path], fmt: str = "md",
                  diagnostics: Sequence[str | Path] = (), first: int | None = None) -> str:
    """``robbench table``: merged runs, models side by side, worst case and diagnostics rows.

    Diagnostics come from a ``diagnostics.csv`` inside or next to a run, and from the
    ``diagnostics`` files given; ``first`` counts only the first ``first`` test images.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is unknown; allowed: {', '.join(FORMATS)}")
    wide, diag = results_frames(run_dirs, diagnostics, first)
    if wide.empty:
        return "(no finished cells)\n"
    if fmt == "csv":
        out = wide.assign(section="accuracy")
        if not diag.empty:
            out = pd.concat([out, diag.assign(section="diagnostics")], ignore_index=True)
        cols = ["section"] + [c for c in out.columns if c != "section"]
        return out[cols].astype(object).fillna("").to_csv(index=False)
    if fmt == "latex":
        text = wide.to_latex(index=False, escape=True)
        if not diag.empty:
            text += "\n" + diag.astype(object).fillna("").to_latex(index=False, escape=True)
        return text
    text = wide.to_markdown(index=False) + "\n"
    if not diag.empty:
        passed = int((diag["status"] == "PASS").sum())
        failed = int((diag["status"] == "FAIL").sum())
        text += (f"\nDiagnostics (gradient masking): {passed} PASS, {failed} FAIL\n\n"
                 + _md_safe(diag).to_markdown(index=False) + "\n")
    return text


def _md_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Empty cells for NaN and ``|`` escaped, so free text cannot break a Markdown table."""
    return frame.astype(object).fillna("").map(
        lambda v: v.replace("|", "\\|") if isinstance(v, str) else v)
