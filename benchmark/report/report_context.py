"""What an HTML report shows of a run or a headline, gathered from its directory.

In the report's order: what was evaluated (models, weights' SHA-256, randomness and its
treatment, dataset, n, seed, versions, devices), the per-example worst case with a sentence
per model on which metric to quote, every attack's row, the diagnostics with every FAIL
explained, and the cells still missing. Figures and commands are added by
:mod:`robbench.report.html_report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robbench.records.scoring import ALL_DRAWS_AT
from robbench.records.store import DirectoryStore, run_devices
from robbench.report.diagnostics_table import failure_meaning, formatted_diagnostics
from robbench.report.figure_style import model_label
from robbench.report.tables import find_diagnostics, results_frames, worst_case_summary
from robbench.report.worst_case import every_attack_rows, worst_case_frame
from robbench.runs.config import RunConfig

STATUS_SYMBOLS = {"PASS": "✔ PASS", "FAIL": "✘ FAIL", "INFO": "ℹ INFO"}
"""A diagnostics status as shown: a symbol and the word, so colour is never the only cue."""


@dataclass
class HtmlTable:
    """A table as the template renders it: column names, rows of text, a class per row."""

    columns: list[str]
    rows: list[list[str]]
    row_classes: list[str] = field(default_factory=list)


def table_of(frame: pd.DataFrame, row_classes: Sequence[str] = ()) -> HtmlTable:
    """A data frame's cells as text (empty for missing values)."""
    shown = frame.astype(object).fillna("")
    rows = [[f"{v:g}" if isinstance(v, float) else str(v) for v in row]
            for row in shown.itertuples(index=False)]
    return HtmlTable([str(c) for c in shown.columns], rows, list(row_classes) or [""] * len(rows))


def randomness_text(model: dict[str, Any]) -> str:
    """How a run found a model's randomness and how it treated it."""
    declared = {True: "declared random", False: "declared deterministic"}.get(
        model.get("declared"), "declares nothing")
    detected = "random" if model.get("detected") else "deterministic"
    treated = ("random: EOT draws in the attacks, R scoring passes" if model.get("stochastic")
               else "deterministic: one pass")
    text = f"{declared}; two passes found it {detected}; treated as {treated}"
    if model.get("forced") is not None:
        text += f" (forced {str(model['forced']).lower()})"
    return text + (f". Warning: {model['warning']}" if model.get("warning") else "")


def unrecorded_randomness(store: DirectoryStore, model: str, meta: dict[str, Any]) -> str:
    """The treatment of a model by a run that predates randomness detection: what its cells'
    scoring passes show."""
    draws = {int(r.get("draws", 1)) for r in store.records() if r["model"] == model}
    treated = ("random: R scoring passes" if max(draws, default=1) > 1
               else "deterministic: one pass")
    return (f"not recorded (robbench {meta.get('robbench_version', '?')} ran before randomness "
            f"detection, on the model's declaration); its cells were treated as {treated}")


def provenance(stores: Sequence[DirectoryStore]) -> dict[str, Any]:
    """The runs' settings and versions (one row per run) and the models they evaluated."""
    run_rows, models, datasets, warnings = [], {}, set(), []
    for store in stores:
        meta = store.read_meta() or {}
        config = meta.get("config", {})
        datasets.add(config.get("dataset", "-"))
        warnings += [w for w in meta.get("warnings", []) if w not in warnings]
        run_rows.append([store.path.name, ", ".join(config.get("attacks", [])),
                         str(meta.get("examples", config.get("n") or "-")),
                         str(config.get("draws", "-")), str(config.get("selection_draws", 0)),
                         str(config.get("seed", "-")), str(config.get("backend", "-")),
                         str(meta.get("robbench_version", "-")),
                         str(meta.get("torch_version", "-")),
                         ", ".join(run_devices(meta)) if "device" in meta else "-"])
        recorded = meta.get("models", {})
        for name in dict.fromkeys([*recorded, *meta.get("checkpoints", {})]):
            checkpoint = meta.get("checkpoints", {}).get(name, {})
            key = (name, str(recorded.get(name, {}).get("source", "-")),
                   str(checkpoint.get("name", "")), str(checkpoint.get("sha256", "")),
                   randomness_text(recorded[name]) if name in recorded else
                   unrecorded_randomness(store, name, meta))
            models.setdefault(key, []).append(store.path.name)
    every = len(stores)
    model_rows = [[*key, "all" if len(runs) == every else ", ".join(runs)]
                  for key, runs in models.items()]
    return {
        "dataset": ", ".join(sorted(datasets)),
        "runs": HtmlTable(["run", "attacks", "n", "R", "R_sel", "seed", "backend", "robbench",
                           "torch", "devices"], run_rows, [""] * len(run_rows)),
        "models": HtmlTable(["model", "source", "checkpoint", "weights SHA-256",
                             "randomness", "runs"], model_rows, [""] * len(model_rows)),
        "warnings": warnings,
    }


def attacked(stores: Sequence[DirectoryStore]) -> bool:
    """Whether any run has a finished attacked cell."""
    return any(r["attack"] != "none" and not r.get("skipped")
               for s in stores for r in s.records())


def quote_sentences(stores: Sequence[DirectoryStore]) -> list[str]:
    """Per model, which metric to quote for which threat model, with its worst case at the
    first (norm, eps): all-draws where a query can be repeated, expected where it cannot."""
    worst = every_attack_rows(worst_case_frame(stores))
    sentences = []
    for model in sorted(worst["model"].unique()):
        rows = worst[worst["model"] == model]
        first = rows.assign(_l2=rows["norm"] != "linf").sort_values(["_l2", "eps"]).iloc[0]
        at = f"worst case at {first['norm'].replace('linf', 'L∞').replace('l2', 'L2')} " \
             f"ε = {first['eps']:g}"
        if bool(first["stochastic"]):
            sentences.append(
                f"{model_label(model)} is random: quote its all-draws accuracy "
                f"({first['all_draws']:.1%}, {at}) wherever an attacker may resubmit an "
                f"input, its expected accuracy ({first['accuracy']:.1%}) where each input is "
                f"answered once, and its majority accuracy ({first['majority']:.1%}) only for "
                f"a defense that answers with the majority of R = {int(first['draws'])} "
                "passes.")
        else:
            sentences.append(
                f"{model_label(model)} is deterministic: one pass decides, so expected, "
                f"majority and all-draws coincide; quote {first['accuracy']:.1%} ({at}) for "
                "every threat model.")
    return sentences


def accuracy_tables(stores: Sequence[DirectoryStore]) -> dict[str, Any]:
    """The worst case per norm and eps (models side by side, every metric with its interval),
    the quote sentences, and every attack's row."""
    wide, _ = results_frames(stores, all_draws_at=ALL_DRAWS_AT)
    if not attacked(stores):
        return {"worst_case": None, "quotes": [], "attack_rows": table_of(wide)}
    return {"worst_case": table_of(worst_case_summary(stores, ALL_DRAWS_AT)),
            "quotes": quote_sentences(stores), "attack_rows": table_of(wide)}


def diagnostics_files(root: Path, stores: Sequence[DirectoryStore]) -> list[Path]:
    """Every diagnostics.csv of the directory: under diagnostics/ and inside or next to its
    runs."""
    found = sorted((root / "diagnostics").glob("*/diagnostics.csv"))
    for store in stores:
        found += sorted((store.path / "diagnostics").glob("*/diagnostics.csv"))
        found += [p for p in [find_diagnostics(store)] if p is not None]
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def diagnostics_section(path: Path) -> dict[str, Any]:
    """One diagnostics.csv: its rows with PASS/FAIL marked, and each FAIL explained."""
    frame = pd.read_csv(path)
    frame["status"] = frame["status"].astype(str).str.upper()
    shown = formatted_diagnostics(frame)
    classes = [s.lower() for s in shown["status"]]
    shown["status"] = shown["status"].map(lambda s: STATUS_SYMBOLS.get(s, s))
    failures = []
    for _, row in frame[frame["status"] == "FAIL"].iterrows():
        meaning = failure_meaning(str(row["check"]))
        eps = "" if pd.isna(row.get("eps")) else f" at ε = {row['eps']:g}"
        failures.append({"row": f"{row['check']} ({row['attack']}{eps})",
                         "detail": "" if pd.isna(row.get("detail")) else str(row["detail"]),
                         "means": meaning.means if meaning else "this check failed",
                         "to_do": meaning.to_do if meaning else "see docs/protocol.md"})
    return {"name": path.parent.name, "passed": int((frame["status"] == "PASS").sum()),
            "failed": len(failures), "table": table_of(shown, classes), "failures": failures}


def missing_cells(stores: Sequence[DirectoryStore], not_started: Sequence[str] = ()
                  ) -> list[str]:
    """The cells a run set out to compute and has not finished, one line each; a run with
    crafted batches kept is in progress."""
    lines = [f"{name}: not started (no run directory)" for name in not_started]
    for store in stores:
        meta = store.read_meta()
        if meta is None:
            lines.append(f"{store.path.name}: no config.json")
            continue
        missing = sorted(RunConfig.from_meta(meta).expected_cells() - store.done())
        state = "in progress or stopped; crafted batches kept" if (
            store.path / "partial").is_dir() else "stopped"
        lines += [f"{store.path.name}: {cell.replace('__', ' / ')} ({state})"
                  for cell in missing]
    return lines
