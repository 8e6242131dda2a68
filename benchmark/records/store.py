"""The run store: a run's config, its finished cells and the crafted batches of unfinished ones.

A run directory holds::

    config.json          arguments, versions, models (checkpoint names and SHA-256), seeding
    cells/<cell>.json    one summary record per finished cell
    cells/<cell>.npz     its per-example outcomes: index, label, pred (R_eval, N) and, for a
                         stochastic model, sel_pred (R_sel, N) (independent passes used only to
                         choose the worst case), norm; attacked cells also clean_pred and
                         adv_index / adv_x (float16), the first ADV_KEEP adversarial images
    summary.csv / .md    all finished cells, regenerated after each cell
    partial/<group>/     crafted and scored batches of cells not yet written

Every file is written atomically, outcomes before their record, so a cell counts as finished
only once its JSON exists. :class:`MemoryStore` keeps the same things in memory, for
evaluations that write nothing.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save

from robbench.atomic_write import atomic_write_bytes, atomic_write_text
from robbench.records.scoring import METRICS, accuracy_fields

ADV_KEEP = 16
"""Adversarial images kept per attacked cell (for plots), as float16."""

SUMMARY_COLUMNS = [
    "dataset", "model", "checkpoint", "attack", "backend", "norm", "eps", "steps", "eot",
    "draws", "selection_draws", "stochastic", "seed", "n", "correct", "accuracy", "ci_low",
    "ci_high", "majority", "majority_low", "majority_high", "all_draws", "all_draws_low",
    "all_draws_high", "all_draws@10", "scoring", "seeding", "skipped", "seconds", "version",
]
SCORING = "disjoint"
"""Scoring of cells written now: worst cases choose on selection passes, report fresh ones."""
OLD_SCORING = "same-draws"
"""Cells written before robbench kept selection passes: one set of passes did both."""
OLD_SEEDING = "sequential"
"""Runs written before per-batch seeding: one random stream ran through the batches."""


def cell_id(model: str, attack: str, eps: float) -> str:
    return f"{model}__{attack}__{float(eps):g}"


def record_key(record: dict[str, Any]) -> str:
    return cell_id(record["model"], record["attack"], record["eps"])


def upgrade_record(record: dict[str, Any], outcomes: dict[str, np.ndarray] | None
                   ) -> dict[str, Any]:
    """A record of any robbench version with every summary column: fields older records lack
    are derived from their outcomes (the majority and all-draws metrics) or marked as the old
    schemes they were computed under."""
    rec = dict(record)
    rec.setdefault("stochastic", int(rec.get("draws", 1)) > 1)
    rec.setdefault("scoring", OLD_SCORING)
    rec.setdefault("seeding", OLD_SEEDING)
    rec.setdefault("skipped", "")
    rec.setdefault("selection_draws", 0)
    if "majority" not in rec and outcomes is not None and "pred" in outcomes:
        fields = accuracy_fields(outcomes["pred"], outcomes["label"])
        rec.update({k: v for k, v in fields.items() if k.startswith(METRICS[1:])})
    return rec


class RunStore:
    """Where a run keeps its config, cells and partial batches (see the module docstring)."""

    label = "run"

    def read_meta(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def write_meta(self, meta: dict[str, Any]) -> None:
        raise NotImplementedError

    def raw_records(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def outcomes(self, key: str) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def write_cell(self, key: str, record: dict[str, Any],
                   outcomes: dict[str, np.ndarray] | None) -> None:
        raise NotImplementedError

    def batches(self, group: str) -> dict[int, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def keep_batch(self, group: str, start: int, tensors: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def discard_batches(self, group: str | None = None) -> None:
        raise NotImplementedError

    def write_summary(self, csv: str, markdown: str) -> None:
        """Keep the rendered summary (a directory writes summary.csv and .md)."""

    def done(self) -> set[str]:
        return {record_key(r) for r in self.raw_records()}

    def records(self) -> list[dict[str, Any]]:
        """Every finished cell's record, upgraded to the current columns."""
        out = []
        for rec in self.raw_records():
            needs = "majority" not in rec and not rec.get("skipped")
            out.append(upgrade_record(rec, self.outcomes(record_key(rec)) if needs else None))
        return out

    def summary(self) -> pd.DataFrame:
        """All finished cells as a summary frame, sorted by model, attack and eps."""
        frame = pd.DataFrame(self.records(), columns=SUMMARY_COLUMNS)
        return frame.sort_values(["model", "attack", "eps"], kind="stable").reset_index(drop=True)


class DirectoryStore(RunStore):
    """A run directory on disk."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.label = str(self.path)

    def read_meta(self) -> dict[str, Any] | None:
        path = self.path / "config.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def write_meta(self, meta: dict[str, Any]) -> None:
        atomic_write_text(self.path / "config.json", json.dumps(meta, indent=2))

    def raw_records(self) -> list[dict[str, Any]]:
        cells = sorted((self.path / "cells").glob("*.json"))
        return [json.loads(p.read_text()) for p in cells]

    def outcomes(self, key: str) -> dict[str, np.ndarray]:
        with np.load(self.path / "cells" / f"{key}.npz") as data:
            return {k: data[k] for k in data.files}

    def write_cell(self, key: str, record: dict[str, Any],
                   outcomes: dict[str, np.ndarray] | None) -> None:
        cells = self.path / "cells"
        if outcomes is not None:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **outcomes)
            atomic_write_bytes(cells / f"{key}.npz", buffer.getvalue())
        atomic_write_text(cells / f"{key}.json", json.dumps(record, indent=2))

    def _partial(self, group: str) -> Path:
        return self.path / "partial" / group

    def batches(self, group: str) -> dict[int, dict[str, torch.Tensor]]:
        found = {}
        for path in sorted(self._partial(group).glob("batch-*.safetensors")):
            with safe_open(str(path), framework="pt") as f:
                found[int((f.metadata() or {})["start"])] = {k: f.get_tensor(k) for k in f.keys()}
        return found

    def keep_batch(self, group: str, start: int, tensors: dict[str, torch.Tensor]) -> None:
        plain = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        atomic_write_bytes(self._partial(group) / f"batch-{start:07d}.safetensors",
                           save(plain, metadata={"start": str(start)}))

    def discard_batches(self, group: str | None = None) -> None:
        partial = self.path / "partial"
        shutil.rmtree(partial if group is None else self._partial(group), ignore_errors=True)
        if partial.is_dir() and not any(partial.iterdir()):
            partial.rmdir()

    def write_summary(self, csv: str, markdown: str) -> None:
        atomic_write_text(self.path / "summary.csv", csv)
        atomic_write_text(self.path / "summary.md", markdown)


class MemoryStore(RunStore):
    """A run kept in memory: nothing is written."""

    label = "in-memory run"

    def __init__(self) -> None:
        self.meta: dict[str, Any] | None = None
        self.cells: dict[str, tuple[dict[str, Any], dict[str, np.ndarray] | None]] = {}
        self.partial: dict[str, dict[int, dict[str, torch.Tensor]]] = {}

    def read_meta(self) -> dict[str, Any] | None:
        return self.meta

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.meta = json.loads(json.dumps(meta))

    def raw_records(self) -> list[dict[str, Any]]:
        return [dict(rec) for _, (rec, _) in sorted(self.cells.items())]

    def outcomes(self, key: str) -> dict[str, np.ndarray]:
        return dict(self.cells[key][1] or {})

    def write_cell(self, key: str, record: dict[str, Any],
                   outcomes: dict[str, np.ndarray] | None) -> None:
        self.cells[key] = (dict(record), outcomes)

    def batches(self, group: str) -> dict[int, dict[str, torch.Tensor]]:
        return dict(self.partial.get(group, {}))

    def keep_batch(self, group: str, start: int, tensors: dict[str, torch.Tensor]) -> None:
        self.partial.setdefault(group, {})[start] = {k: v.detach().cpu()
                                                    for k, v in tensors.items()}

    def discard_batches(self, group: str | None = None) -> None:
        if group is None:
            self.partial.clear()
        else:
            self.partial.pop(group, None)


def open_run(run: str | Path | RunStore) -> RunStore:
    """A run given as a directory or a store, as a store (a directory must hold cells/)."""
    if isinstance(run, RunStore):
        return run
    if not (Path(run) / "cells").is_dir():
        raise FileNotFoundError(f"{run} is not a robbench run directory (no cells/)")
    return DirectoryStore(run)


def open_runs(runs: Sequence[str | Path | RunStore]) -> list[RunStore]:
    return [open_run(r) for r in runs]


def find_runs(given: Sequence[str], root: str | Path) -> list[Path]:
    """The run directories named on the command line, else every run under ``root``."""
    for run in given:
        if not (Path(run) / "cells").is_dir():
            raise ValueError(f"run {run!r} is not a run directory (no cells/); give a directory "
                             f"made by `robbench run`, e.g. {root}/<run id>")
    runs = [Path(r) for r in given] or sorted(p.parent for p in Path(root).glob("*/config.json"))
    if not runs:
        raise ValueError(f"no runs given and none found under {str(root)!r}; pass run "
                         "directories")
    return runs


def read_summary(run: str | Path | RunStore) -> pd.DataFrame:
    """All finished cells of a run as a summary frame."""
    return open_run(run).summary()


def run_devices(meta: dict[str, Any]) -> list[str]:
    """The devices that computed a run's cells (older runs name only the last, ``device``)."""
    return meta.get("devices", [meta["device"]])
