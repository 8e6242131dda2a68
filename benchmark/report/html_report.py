"""``robbench report``: one self-contained HTML page of a run, a headline or a leaderboard.

The page carries everything inside it (CSS, figures as PNG data, a few lines of script that
sort the tables), so it opens offline and can be mailed; with scripts off it reads the same,
unsorted. It is rendered from the Jinja2 template ``templates/report.html.j2``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup, escape

from robbench.atomic_write import atomic_write_text
from robbench.records.store import DirectoryStore
from robbench.report.embedded_figures import accuracy_figure, adversarial_figure
from robbench.report.leaderboard_tables import (
    column_notes,
    leaderboard_table,
    leaderboard_warnings,
    read_leaderboard_csv,
    summary_table,
)
from robbench.report.regenerating_commands import (
    DEFAULT_BATCH,
    headline_command,
    report_command,
    run_command,
)
from robbench.report.report_context import (
    accuracy_tables,
    diagnostics_files,
    diagnostics_section,
    missing_cells,
    provenance,
    table_of,
)
from robbench.version import __version__

REPORT_NAME = "report.html"
"""The file a directory's report is written to unless told otherwise."""

KINDS = ("run directory (holds cells/)", "headline directory (holds headline.json)",
         "leaderboard (a .csv file)")


def report_kind(path: str | Path) -> str:
    """``run``, ``headline`` or ``leaderboard``; a clear error for anything else."""
    path = Path(path)
    if path.is_dir() and (path / "cells").is_dir():
        return "run"
    if path.is_dir() and (path / "headline.json").is_file():
        return "headline"
    if path.is_file() and path.suffix == ".csv":
        return "leaderboard"
    raise ValueError(f"cannot report on {str(path)!r}: give a {', a '.join(KINDS)}")


def default_output(path: str | Path) -> Path:
    """Where the report of ``path`` goes: report.html inside a directory, NAME.html beside a
    leaderboard's NAME.csv."""
    path = Path(path)
    return path.with_suffix(".html") if path.suffix == ".csv" else path / REPORT_NAME


def _code(text: str) -> Markup:
    """Escaped text with `backticked` spans as <code>."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def _inline(text: str) -> Markup:
    """Escaped text with Markdown's inline `code`, **strong** and *emphasis* as HTML."""
    html = str(_code(text))
    html = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html)
    return Markup(re.sub(r"(?<![*\w])\*([^*\s][^*]*)\*(?![*\w])", r"<em>\1</em>", html))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("robbench.report", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["code"] = _code
    env.filters["inline"] = _inline
    return env


def evaluation_context(stores: list[DirectoryStore], root: Path) -> dict[str, Any]:
    """Everything the page shows of runs (one run, or a headline's runs)."""
    return {"provenance": provenance(stores), **accuracy_tables(stores),
            "diagnostics": [diagnostics_section(p) for p in diagnostics_files(root, stores)],
            "figures": [accuracy_figure(stores), adversarial_figure(stores)]}


def run_context(path: Path, out: Path) -> dict[str, Any]:
    store = DirectoryStore(path)
    meta = store.read_meta()
    if meta is None:
        raise ValueError(f"run directory {str(path)!r} has no config.json")
    return {"kind": "run", "title": f"robbench run {meta.get('run_id', path.name)}",
            **evaluation_context([store], path), "missing": missing_cells([store]),
            "commands": [run_command(meta, path), report_command(path, out)],
            "command_notes": older_runs_notes([store])}


def headline_context(path: Path, out: Path) -> dict[str, Any]:
    record = json.loads((path / "headline.json").read_text())
    attacks = list(record["config"]["attacks"])
    found = {p.name: p for p in (path / "runs").glob("*") if (p / "cells").is_dir()}
    order = [a for a in attacks if a in found] + sorted(set(found) - set(attacks))
    stores = [DirectoryStore(found[name]) for name in order]
    if not stores:
        raise ValueError(f"headline directory {str(path)!r} has no runs under runs/")
    return {"kind": "headline", "title": f"robbench headline: {record['config']['dataset']}",
            **evaluation_context(stores, path),
            "missing": missing_cells(stores, [a for a in attacks if a not in found]),
            "commands": [headline_command(record, path, batch_size(stores[0])),
                         report_command(path, out)],
            "command_notes": older_runs_notes(stores)}


def batch_size(store: DirectoryStore) -> int:
    return int((store.read_meta() or {}).get("batch_size", DEFAULT_BATCH))


def older_runs_notes(stores: list[DirectoryStore]) -> list[str]:
    """What the commands do not record: where the data lies, and what recomputing changes
    where runs were written by another robbench version."""
    metas = [s.read_meta() or {} for s in stores]
    notes = []
    if any(m.get("config", {}).get("dataset", "digits") != "digits" for m in metas):
        notes.append("Add --data-dir DIR where the dataset's files are not in robbench's "
                     "default place ($ROBBENCH_DATA or ~/.cache/robbench/data)")
    versions = sorted({str(m.get("robbench_version")) for m in metas} - {__version__})
    if versions:
        notes.append(f"Some runs were computed by robbench {', '.join(versions)}; the command "
                     f"recomputes them under robbench {__version__}'s protocol and defaults "
                     "(the runs table gives their backend and passes), so the numbers can differ")
    return notes


def leaderboard_context(path: Path, out: Path) -> dict[str, Any]:
    """A leaderboard robbench wrote: its summary, every row as its Markdown shows them, the
    warnings and what the columns mean; any other CSV: its cells as written."""
    try:
        board = read_leaderboard_csv(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"leaderboard {str(path)!r} is empty: expected a CSV with a header "
                         "row") from None
    context = {"kind": "leaderboard", "title": f"robbench leaderboard: {path.stem}",
               "source": path.name, "commands": [report_command(path, out)], "summary": None}
    if board is None:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        return {**context, "leaderboard": table_of(frame)}
    note, summary = summary_table(board, path.stem)
    return {**context, "summary": table_of(summary), "summary_note": note,
            "leaderboard": table_of(leaderboard_table(board)),
            "warnings": leaderboard_warnings(board), "notes": column_notes()}


CONTEXTS = {"run": run_context, "headline": headline_context, "leaderboard": leaderboard_context}


def render_report(path: str | Path, out: str | Path | None = None) -> str:
    """The HTML page of ``path`` (a run directory, a headline directory or a leaderboard
    CSV); ``out`` is where it will be written (named in its regenerating command)."""
    path = Path(path)
    kind = report_kind(path)
    out = Path(out) if out is not None else default_output(path)
    context = {"command_notes": [], **CONTEXTS[kind](path, out), "robbench": __version__}
    return _environment().get_template("report.html.j2").render(**context)


def write_report(path: str | Path, out: str | Path | None = None) -> Path:
    """Render the report of ``path`` and write it (atomically) to ``out`` or its default
    place; returns the file written."""
    out = Path(out) if out is not None else default_output(path)
    html = render_report(path, out)
    atomic_write_text(out, html)
    return out
