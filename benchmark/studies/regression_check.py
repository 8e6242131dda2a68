"""CI regression of robust accuracy: ``robbench check [--baseline FILE] [--update]``.

``results/baseline.json`` pins the accuracies of a small grid of the embedded default (shipped
digits checkpoints, fixed seeds): the exact :class:`~robbench.runs.config.RunConfig` of every run
and, per cell (model, attack, eps) and metric (expected; for the random Short Run model also
majority and all-draws), the pinned accuracy and its tolerance. ``check`` reruns
the grid into a temporary directory and fails when a value leaves ``expected +- tolerance``.

Tolerance of a cell: ``max(half-width of the 95% Wilson interval of the expected accuracy at
that n, FLOOR)``. The same seed on CPU reproduces the same numbers, so on one machine the check
sees no noise at all; the Wilson half-width (about 0.03-0.07 at n = 200) absorbs the few flipped
examples that another BLAS or torch build may cause, while a real change (a weaker model, a
broken attack, a moved value) is caught. A cell may carry an explicit ``tolerance`` edited by
hand; ``--update`` recomputes tolerances from the rule.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robbench.atomic_write import atomic_write_text
from robbench.records.scoring import METRICS, wilson_interval
from robbench.runs.config import RunConfig
from robbench.runs.named import run_named
from robbench.version import __version__

DEFAULT_BASELINE = Path("results/baseline.json")
FLOOR = 0.02
DECIMALS = 6

DEFAULT_RUNS: tuple[RunConfig, ...] = (
    RunConfig(dataset="digits", models=["convnet", "shortrun"], attacks=["fgsm", "pgd"],
              eps=[0.1, 0.2], n=200, draws=10, seed=0, params={"steps": 20, "step_size": 0.02}),
    RunConfig(dataset="digits", models=["convnet", "shortrun"], attacks=["eot-pgd"],
              eps=[0.1, 0.2], n=200, draws=10, seed=0,
              params={"steps": 20, "step_size": 0.02, "eot": 4}),
)
"""The pinned grid: clean, FGSM, PGD-20 and EOT-4 PGD-20 (step 0.02) at eps 0.1 and 0.2 on
both shipped digits models, the first 200 test images, R = 10 draws for the Short Run model
(about a minute on 2 CPU cores)."""


@dataclass
class CellResult:
    """One compared cell."""

    model: str
    attack: str
    eps: float
    metric: str
    expected: float | None
    got: float | None
    tolerance: float

    @property
    def ok(self) -> bool:
        if self.expected is None or self.got is None:
            return False
        return abs(self.got - self.expected) <= self.tolerance + 1e-12


def tolerance_for(accuracy: float, n: int, floor: float = FLOOR) -> float:
    """max(half-width of the 95% Wilson interval at ``accuracy`` and ``n``, ``floor``)."""
    low, high = wilson_interval(accuracy * n, n)
    return round(max((high - low) / 2, floor), 4)


def cell_name(cell: dict[str, Any]) -> str:
    return (f"{cell['model']} {cell['attack']} eps={float(cell['eps']):g} "
            f"{cell.get('metric', 'expected')}")


def _key(cell: dict[str, Any]) -> tuple[str, str, float, str]:
    return (cell["model"], cell["attack"], round(float(cell["eps"]), 9),
            cell.get("metric", "expected"))


def metric_values(rec: dict[str, Any]) -> dict[str, float]:
    """A summary record's pinned values: expected, and for a random model every metric."""
    values = {"expected": float(rec["accuracy"])}
    if rec.get("stochastic"):
        values.update({m: float(rec[m]) for m in METRICS[1:]})
    return values


def run_grid(runs: Sequence[RunConfig], out_dir: str | Path | None = None, *,
             quiet: bool = True) -> tuple[list[dict[str, Any]], dict[str, str], float]:
    """Run every config (fresh, into a temp dir unless ``out_dir``); cells, checkpoints, secs.

    Cells of several runs that coincide (the clean cells) are kept once (the first).
    """
    start = time.perf_counter()
    cells: dict[tuple, dict[str, Any]] = {}
    checkpoints: dict[str, str] = {}
    threads = torch.get_num_threads()
    # one intra-op thread: the same reduction order on every machine (reproducible numbers),
    # and no slowdown from oversubscribed cores on a busy CI runner
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="robbench-check-") as tmp:
        root = Path(out_dir) if out_dir is not None else Path(tmp)
        for config in runs:
            run_dir = root / config.run_id()
            summary = run_named(config, run_dir, device="cpu", quiet=quiet)
            meta = json.loads((run_dir / "config.json").read_text())
            for model, card in meta["checkpoints"].items():
                checkpoints[model] = card["sha256"]
            for rec in summary.to_dict("records"):
                for metric, value in metric_values(rec).items():
                    cell = {"model": rec["model"], "attack": rec["attack"],
                            "eps": float(rec["eps"]), "metric": metric, "n": int(rec["n"]),
                            "draws": int(rec["draws"]), "steps": int(rec["steps"]),
                            "eot": int(rec["eot"]), "accuracy": round(value, DECIMALS)}
                    cells.setdefault(_key(cell), cell)
    torch.set_num_threads(threads)
    return list(cells.values()), checkpoints, time.perf_counter() - start


def build_baseline(runs: Sequence[RunConfig], cells: list[dict[str, Any]],
                   checkpoints: dict[str, str], floor: float = FLOOR) -> dict[str, Any]:
    """The baseline document (no timestamps, so an unchanged grid rewrites identical bytes)."""
    return {
        "description": "Pinned robust accuracies of the embedded default (shipped digits "
                       "checkpoints, fixed seeds). Regenerate with `robbench check --update`; "
                       "never edit numbers by hand.",
        "command": "robbench check --update",
        "robbench_version": __version__,
        "tolerance_rule": f"max(half-width of 95% Wilson interval at expected and n, {floor})",
        "floor": floor,
        "checkpoints": dict(sorted(checkpoints.items())),
        "runs": [dataclasses.asdict(c) for c in runs],
        "cells": [{"model": c["model"], "attack": c["attack"], "eps": c["eps"],
                   "metric": c["metric"], "n": c["n"], "draws": c["draws"], "steps": c["steps"],
                   "eot": c["eot"], "expected": c["accuracy"],
                   "tolerance": tolerance_for(c["accuracy"], c["n"], floor)}
                  for c in sorted(cells, key=lambda c: (c["model"], c["attack"] != "none",
                                                        c["attack"], c["eps"],
                                                        METRICS.index(c["metric"])))],
    }


def load_baseline(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"baseline {path} does not exist; create it with "
                                f"`robbench check --update --baseline {path}`")
    doc = json.loads(path.read_text())
    for key in ("runs", "cells"):
        if key not in doc:
            raise ValueError(f"baseline {path} has no {key!r}; regenerate it with --update")
    return doc


def runs_of(doc: dict[str, Any]) -> list[RunConfig]:
    return [RunConfig(**r) for r in doc["runs"]]


def compare(doc: dict[str, Any], cells: list[dict[str, Any]]) -> list[CellResult]:
    """Every baseline cell against the fresh ``cells`` (a cell missing from either fails)."""
    got = {_key(c): c for c in cells}
    results = []
    for cell in doc["cells"]:
        fresh = got.pop(_key(cell), None)
        results.append(CellResult(cell["model"], cell["attack"], float(cell["eps"]),
                                  cell.get("metric", "expected"), float(cell["expected"]),
                                  None if fresh is None else fresh["accuracy"],
                                  float(cell["tolerance"])))
    for cell in got.values():
        results.append(CellResult(cell["model"], cell["attack"], cell["eps"], cell["metric"],
                                  None, cell["accuracy"], 0.0))
    return results


def _fmt(value: float | None) -> str:
    return "missing" if value is None else f"{value:.4f}"


def check(baseline: str | Path = DEFAULT_BASELINE, *, quiet: bool = True,
          out_dir: str | Path | None = None, echo=print) -> int:
    """Rerun the pinned grid; 0 when every cell is within tolerance, else 1 (regressions named)."""
    doc = load_baseline(baseline)
    cells, checkpoints, seconds = run_grid(runs_of(doc), out_dir, quiet=quiet)
    for model, sha in checkpoints.items():
        pinned = doc.get("checkpoints", {}).get(model)
        if pinned and pinned != sha:
            echo(f"note: {model} checkpoint {sha[:12]} differs from the baseline's "
                 f"{pinned[:12]}")
    results = compare(doc, cells)
    bad = [r for r in results if not r.ok]
    echo(f"{'model':9s} {'attack':8s} {'eps':>5s} {'metric':9s} {'expected':>9s} {'got':>9s} "
         f"{'tolerance':>9s}  status")
    for r in results:
        echo(f"{r.model:9s} {r.attack:8s} {r.eps:5g} {r.metric:9s} {_fmt(r.expected):>9s} "
             f"{_fmt(r.got):>9s} {r.tolerance:9.4f}  {'ok' if r.ok else 'REGRESSED'}")
    if bad:
        echo(f"robbench check: FAILED, {len(bad)} of {len(results)} cells out of tolerance "
             f"({seconds:.1f} s):")
        for r in bad:
            echo(f"  regressed: model={r.model} attack={r.attack} eps={r.eps:g} "
                 f"metric={r.metric} expected={_fmt(r.expected)} got={_fmt(r.got)} "
                 f"tolerance={r.tolerance:.4f}")
        return 1
    echo(f"robbench check: passed, {len(results)} cells within tolerance ({seconds:.1f} s)")
    return 0


def update(baseline: str | Path = DEFAULT_BASELINE, *, runs: Sequence[RunConfig] | None = None,
           quiet: bool = True, out_dir: str | Path | None = None, echo=print) -> int:
    """Rerun the grid (the baseline's own, else ``runs``, else DEFAULT_RUNS) and rewrite it.

    Prints every change: cells whose expected value or tolerance moved, cells added or removed,
    and changed checkpoints or settings. Returns 0.
    """
    path = Path(baseline)
    old = json.loads(path.read_text()) if path.is_file() else None
    if runs is None:
        runs = runs_of(old) if old is not None and "runs" in old else list(DEFAULT_RUNS)
    cells, checkpoints, seconds = run_grid(runs, out_dir, quiet=quiet)
    floor = float(old.get("floor", FLOOR)) if old else FLOOR
    new = build_baseline(runs, cells, checkpoints, floor)
    changes = diff(old, new)
    atomic_write_text(path, json.dumps(new, indent=2) + "\n")
    if old is None:
        echo(f"created {path}: {len(new['cells'])} cells ({seconds:.1f} s)")
    elif not changes:
        echo(f"{path}: unchanged ({len(new['cells'])} cells, {seconds:.1f} s)")
    else:
        echo(f"updated {path} ({seconds:.1f} s); changed:")
    for line in changes:
        echo(f"  {line}")
    return 0


def diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two baseline documents."""
    if old is None:
        return []
    lines = []
    for key in sorted(set(old) | set(new)):
        if key != "cells" and old.get(key) != new.get(key):
            lines.append(f"{key}: {json.dumps(old.get(key))} -> {json.dumps(new.get(key))}")
    before = {_key(c): c for c in old.get("cells", [])}
    after = {_key(c): c for c in new["cells"]}
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a is None:
            lines.append(f"added {cell_name(b)}: expected {b['expected']:.4f}")
        elif b is None:
            lines.append(f"removed {cell_name(a)} (was {a['expected']:.4f})")
        elif a != b:
            fields = [f"{f} {a.get(f)} -> {b.get(f)}" for f in sorted(set(a) | set(b))
                      if a.get(f) != b.get(f)]
            lines.append(f"{cell_name(b)}: " + ", ".join(fields))
    return lines
