"""Comparison tables: models side by side, attacks and eps as rows (Markdown, CSV, LaTeX).

:func:`comparison_table` renders one summary frame; :func:`results_table` (``robbench table``)
merges runs and adds the per-example worst case over attacks (``robbench.report.worst_case``)
and the diagnostics' pass/fail. A random model gets three columns, one per metric (expected,
majority, all-draws; see ``robbench.records.scoring``); a deterministic model one, since the
three coincide for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from robbench.records.scoring import ALL_DRAWS_AT, METRIC_LABELS, accuracy_fields
from robbench.records.store import (
    SUMMARY_COLUMNS,
    DirectoryStore,
    RunStore,
    open_run,
    open_runs,
    record_key,
)
from robbench.report.diagnostics_table import masking_warning
from robbench.report.worst_case import (
    WORST_CASE,
    first_images,
    worst_case_frame,
    worst_case_label,
)

FORMATS = ("md", "csv", "latex")
INDEX = ["dataset", "attack", "norm", "eps", "steps", "eot", "draws", "n"]


def format_accuracy(accuracy: float, low: float, high: float) -> str:
    """``76.3% [71.9, 80.3]``: an accuracy and its 95% interval in percent."""
    if accuracy != accuracy:
        return "-"
    return f"{100 * accuracy:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def metric_columns(model: str, stochastic: bool, all_draws_at: Sequence[int] = ()
                   ) -> dict[str, tuple[str, str, str]]:
    """{column label: (value, low, high) fields} for a model: one column if deterministic."""
    columns = {model: ("accuracy", "ci_low", "ci_high")}
    if stochastic:
        for metric in ("majority", "all_draws"):
            columns[f"{model} {METRIC_LABELS[metric]}"] = (metric, f"{metric}_low",
                                                           f"{metric}_high")
        for r in all_draws_at:
            columns[f"{model} all-draws@{r}"] = (f"all_draws@{r}",) * 3
    return columns


def _cell(row: pd.Series, fields: tuple[str, str, str]) -> str:
    if isinstance(row.get("skipped"), str) and row["skipped"]:
        return f"skipped: {row['skipped']}"
    value, low, high = (row.get(f, float("nan")) for f in fields)
    if fields[0] == fields[1]:  # a point estimate without its own interval
        return "-" if value != value else f"{100 * value:.1f}%"
    return format_accuracy(value, low, high)


def _per_model(values: pd.Series) -> str:
    distinct = list(dict.fromkeys(int(v) for v in values))
    return str(distinct[0]) if len(distinct) == 1 else "/".join(str(int(v)) for v in values)


def stochastic_models(frame: pd.DataFrame) -> set[str]:
    """Models scored as random in any row of ``frame``."""
    flags = frame["stochastic"].fillna(False).astype(bool)
    return set(frame.loc[flags, "model"])


def _align_skipped(frame: pd.DataFrame) -> pd.DataFrame:
    """Skipped cells take the steps, eot, draws and n of the run's cell at the same attack and
    eps, so they share its row."""
    skipped = frame["skipped"].fillna("").astype(str) != ""
    ran = frame[~skipped].drop_duplicates(["dataset", "attack", "eps"]).set_index(
        ["dataset", "attack", "eps"])
    for i in frame.index[skipped]:
        key = tuple(frame.loc[i, ["dataset", "attack", "eps"]])
        if key in ran.index:
            frame.loc[i, ["steps", "eot", "draws", "n"]] = ran.loc[key, ["steps", "eot", "draws",
                                                                        "n"]].to_numpy()
    return frame


def comparison_frame(summary: pd.DataFrame, all_draws_at: Sequence[int] = ()) -> pd.DataFrame:
    """One row per (dataset, attack, norm, eps, steps, eot, draws, n), model columns.

    Where the models ran different EOT draws or scoring passes (a deterministic model runs
    one), ``eot`` and ``draws`` list them in model order, e.g. ``1/16``.
    """
    if summary.empty:
        return pd.DataFrame()
    frame = _align_skipped(summary.sort_values("model").reset_index(drop=True).copy())
    group = ["dataset", "attack", "eps", "steps", "n"]
    for col in ("eot", "draws"):
        frame[col] = frame.groupby(group)[col].transform(_per_model)
    random = stochastic_models(frame)
    wide = frame[INDEX].drop_duplicates().reset_index(drop=True)
    for model in sorted(frame["model"].unique()):
        rows = frame[frame["model"] == model].set_index(INDEX)
        for label, fields in metric_columns(model, model in random, all_draws_at).items():
            cells = rows.apply(lambda r, f=fields: _cell(r, f), axis=1)
            cells = cells[~cells.index.duplicated()]
            keys = wide[INDEX].itertuples(index=False)
            wide[label] = [cells.get(tuple(k), np.nan) for k in keys]
    wide = _drop_empty(wide, all_draws_at)
    wide["_order"] = (wide["attack"] != "none").astype(int)
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
    return wide.astype(object).fillna("-").to_markdown(index=False) + "\n"


def worst_case_wide(worst: pd.DataFrame, all_draws_at: Sequence[int] = ()) -> pd.DataFrame:
    """Worst-case rows with the models side by side (every metric of a random model),
    labelled by what they leave out, with the attacks each row counts."""
    if worst.empty:
        return pd.DataFrame()
    worst = worst.assign(label=worst["without"].map(worst_case_label))
    index = ["dataset", "label", "norm", "eps", "n"]
    groups = worst.groupby(index, sort=False)
    wide = groups[["model", "attacks"]].apply(attacks_counted).rename("attacks").reset_index()
    scoring = groups["scoring"].agg(lambda s: "same-draws" if (s == "same-draws").any()
                                    else "disjoint")
    random = stochastic_models(worst)
    for model in sorted(worst["model"].unique()):
        rows = worst[worst["model"] == model].set_index(index)
        for column, fields in metric_columns(model, model in random, all_draws_at).items():
            cells = rows.apply(lambda r, f=fields: _cell(r, f), axis=1)
            keys = wide[index].itertuples(index=False)
            wide[column] = [cells.get(tuple(k), np.nan) for k in keys]
    wide["scoring"] = [scoring[tuple(k)] for k in wide[index].itertuples(index=False)]
    return _drop_empty(wide, all_draws_at).rename(columns={"label": "attack"})


def attacks_counted(rows: pd.DataFrame) -> str:
    """The attacks a worst-case row counts, one that only some of its models ran (AutoAttack's
    standard version runs on deterministic ones) followed by their names."""
    ran = {m: set(a.split("+")) for m, a in zip(rows["model"], rows["attacks"], strict=True)}
    names = sorted(set().union(*ran.values()))
    return "+".join(n if all(n in s for s in ran.values())
                    else f"{n} ({', '.join(m for m, s in ran.items() if n in s)})"
                    for n in names)


def _drop_empty(wide: pd.DataFrame, all_draws_at: Sequence[int]) -> pd.DataFrame:
    """Without the all-draws@R columns no row has a value in (no cell had more passes)."""
    empty = [c for c in wide.columns if any(c.endswith(f"all-draws@{r}") for r in all_draws_at)
             and (wide[c].isna() | (wide[c] == "-")).all()]
    return wide.drop(columns=empty)


def first_images_summary(run: str | Path | RunStore, first: int) -> pd.DataFrame:
    """A run's summary as if every cell had run on its first ``first`` test images only:
    every metric and interval recomputed from the per-example outcomes."""
    store = open_run(run)
    rows = []
    for rec in store.records():
        if not rec.get("skipped"):
            out = first_images(store.outcomes(record_key(rec)), first)
            rec = {**rec, **accuracy_fields(out["pred"], out["label"])}
        rows.append(rec)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def find_diagnostics(run: str | Path | RunStore) -> Path | None:
    """``diagnostics.csv`` inside the run directory, or next to it (its parent), if present."""
    if isinstance(run, RunStore):
        if not isinstance(run, DirectoryStore):
            return None
        run = run.path
    run_dir = Path(run)
    for path in (run_dir / "diagnostics.csv", run_dir.parent / "diagnostics.csv"):
        if path.is_file():
            return path
    return None


DIAGNOSTIC_COLUMNS = ("source", "model", "check", "attack", "setting", "eps", "accuracy",
                      "status", "detail")


def diagnostics_frame(run_dirs: Sequence[str | Path | RunStore],
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


def results_frames(runs: Sequence[str | Path | RunStore], diagnostics: Sequence[str | Path] = (),
                   first: int | None = None, all_draws_at: Sequence[int] = ()
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The merged comparison (attack rows + worst-case rows) and diagnostics of several runs;
    ``first`` restricts every row to the first ``first`` test images, so that attacks run on
    different numbers of images compare on the same ones."""
    if not runs:
        raise ValueError("no runs given")
    if first is not None and first < 1:
        raise ValueError(f"first {first} must be an integer >= 1")
    stores = open_runs(runs)
    summary = pd.concat([s.summary() if first is None else first_images_summary(s, first)
                         for s in stores], ignore_index=True)
    summary = summary.drop_duplicates(
        subset=["dataset", "model", "checkpoint", "attack", "backend", "norm", "eps", "steps",
                "eot", "draws", "seed", "n"])
    wide = comparison_frame(summary, all_draws_at)
    worst = worst_case_frame(stores, first, all_draws_at)
    if not worst.empty and not wide.empty:
        wrows = worst_case_wide(worst, all_draws_at).assign(steps="-", eot="-", draws="-")
        wide = wide.astype({"steps": object, "eot": object, "draws": object})
        wide = pd.concat([wide, wrows[[c for c in wide.columns if c in wrows.columns]]],
                         ignore_index=True)
        worst_row = wide["attack"].str.startswith(WORST_CASE)
        rank = np.where(wide["attack"] == "none", 0, np.where(worst_row, 2, 1))
        group = wide["attack"].where(~worst_row, WORST_CASE)
        wide = (wide.assign(_rank=rank, _group=group)
                .sort_values(["dataset", "_rank", "_group", "eps", "attack", "n"], kind="stable")
                .drop(columns=["_rank", "_group"]).reset_index(drop=True))
    return wide.astype(object).fillna("-"), diagnostics_frame(runs, diagnostics)


def results_table(runs: Sequence[str | Path | RunStore], fmt: str = "md",
                  diagnostics: Sequence[str | Path] = (), first: int | None = None,
                  all_draws_at: Sequence[int] = ()) -> str:
    """``robbench table``: merged runs, models side by side, worst case and diagnostics rows.

    Diagnostics come from a ``diagnostics.csv`` inside or next to a run, and from the
    ``diagnostics`` files given; ``first`` counts only the first ``first`` test images;
    ``all_draws_at`` adds a random model's all-draws accuracy at fewer passes.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is unknown; allowed: {', '.join(FORMATS)}")
    wide, diag = results_frames(runs, diagnostics, first, all_draws_at)
    if wide.empty:
        return "(no finished cells)\n"
    warning = masking_warning(diag)
    if fmt == "csv":
        out = wide.assign(section="accuracy")
        if not diag.empty:
            out = pd.concat([out, diag.assign(section="diagnostics")], ignore_index=True)
        if warning:
            out = pd.concat([out, pd.DataFrame([{"section": "warning",
                                                 "detail": warning.strip("*\n")}])],
                            ignore_index=True)
        cols = ["section"] + [c for c in out.columns if c != "section"]
        return out[cols].astype(object).fillna("").to_csv(index=False)
    if fmt == "latex":
        text = wide.to_latex(index=False, escape=True)
        if not diag.empty:
            text += "\n" + diag.astype(object).fillna("").to_latex(index=False, escape=True)
        return text
    text = (f"{warning}\n" if warning else "") + wide.to_markdown(index=False) + "\n"
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


def worst_case_summary(runs: Sequence[str | Path | RunStore], all_draws_at: Sequence[int] = (),
                       first: int | None = None) -> pd.DataFrame:
    """Clean accuracy (largest n) and the per-example worst case per (norm, eps) of the runs,
    every metric of a random model (all-draws at R and at ``all_draws_at``); ``first`` counts
    only the first test images."""
    wide, _ = results_frames(runs, first=first, all_draws_at=all_draws_at)
    clean = wide[wide.attack == "none"]
    clean = clean[clean.n == clean.n.max()].head(1).assign(attack="clean", eps="-")
    worst = worst_case_wide(worst_case_frame(runs, first, all_draws_at), all_draws_at)
    worst = worst.sort_values(["eps", "attack", "n"], kind="stable")
    models = [c for c in wide.columns if c not in
              ("dataset", "attack", "norm", "eps", "steps", "eot", "draws", "n")]
    columns = ["attack", "norm", "eps", "n", *models, "attacks", "scoring"]
    summary = pd.concat([clean.assign(attacks="-", scoring="-"), worst], ignore_index=True)
    summary[models] = summary[models].fillna("-")  # a model without a row at this size
    summary = summary.drop(columns=[c for c in models if (summary[c] == "-").all()])
    return summary[[c for c in columns if c in summary.columns]].rename(columns={"attack": "row"})


def worst_case_markdown(runs: Sequence[str | Path | RunStore], first: int | None = None) -> str:
    """:func:`worst_case_summary` as Markdown, with all-draws at ``ALL_DRAWS_AT`` passes where
    the runs have more (a headline's ``worst_case.md``)."""
    return worst_case_summary(runs, ALL_DRAWS_AT, first).to_markdown(index=False) + "\n"
