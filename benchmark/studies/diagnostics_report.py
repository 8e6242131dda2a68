"""The diagnostics' report files, and the checklist run on models given by name."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from robbench.atomic_write import atomic_write_text
from robbench.data.datasets import Dataset, load_dataset
from robbench.models.zoo import LoadedModel, load_named_model
from robbench.report.diagnostics_table import format_table
from robbench.runs.detection import as_target
from robbench.runs.named import load_models
from robbench.studies.diagnostics import DiagnoseConfig, run_diagnostics
from robbench.version import __version__


def write_report(frame: pd.DataFrame, out_dir: str | Path, meta: dict | None = None) -> Path:
    """diagnostics.csv and diagnostics.md in ``out_dir`` (atomic writes)."""
    out = Path(out_dir)
    atomic_write_text(out / "diagnostics.csv", frame.to_csv(index=False))
    failed = int((frame["status"] == "FAIL").sum())
    head = "# Gradient-masking diagnostics\n\n"
    if meta:
        head += "".join(f"- {k}: {v}\n" for k, v in meta.items()) + "\n"
    verdict = (f"**{failed} check(s) FAILED** - the robust accuracy of this model is not "
               "trustworthy until they pass.\n" if failed else "All checks passed.\n")
    atomic_write_text(out / "diagnostics.md", head + format_table(frame) + "\n" + verdict)
    return out


def report_verdict(frame: pd.DataFrame, seconds: float, out_dir: str | Path) -> str:
    """The checklist as printed: its table, then whether every check passed."""
    failed = int((frame["status"] == "FAIL").sum())
    verdict = f"FAILED: {failed} check(s)" if failed else "all checks passed"
    return (f"{format_table(frame)}\n{verdict} in {seconds:.0f} s; written: "
            f"{Path(out_dir)}/diagnostics.csv, diagnostics.md")


def run_key(model: str, dataset: str, cfg: DiagnoseConfig, sha256: str) -> dict[str, Any]:
    settings = json.loads(json.dumps(cfg.as_dict(), default=list))
    return {"model": model, "dataset": dataset, "robbench": __version__, "settings": settings,
            "checkpoint": sha256}


def current_report_seconds(out_dir: str | Path, key: dict[str, Any]) -> float | None:
    """The seconds the report in ``out_dir`` took if it is of exactly this ``run_key`` (so it
    need not be recomputed), else None."""
    path = Path(out_dir) / "config.json"
    if not ((Path(out_dir) / "diagnostics.csv").is_file() and path.is_file()):
        return None
    record = json.loads(path.read_text())
    return record.get("seconds") if record.get("run") == key else None


def transfer_source(name: str, dataset: str, device: str, data_dir: str | None
                    ) -> LoadedModel | None:
    """robbench's ConvNet of the dataset (its Short Run classifier for the ConvNet itself), or
    None where the zoo has no model for the dataset."""
    other = "convnet" if name != "convnet" else "shortrun"
    try:
        return load_named_model(other, dataset, device=device, data_dir=data_dir)
    except ValueError:
        return None


def diagnose_loaded(loaded: LoadedModel, data: Dataset, out_dir: str | Path, *,
                    source: LoadedModel | None, config: DiagnoseConfig | None = None,
                    device: str = "cpu", quiet: bool = False) -> tuple[pd.DataFrame, float]:
    """The checklist on a loaded model, written to ``out_dir``; (rows, seconds). A report of
    the same model weights, dataset and settings already there is reused."""
    cfg = config or DiagnoseConfig()
    key = run_key(loaded.name, data.name, cfg, loaded.sha256)
    seconds = current_report_seconds(out_dir, key)
    if seconds is not None:
        return pd.read_csv(Path(out_dir) / "diagnostics.csv"), seconds
    x, y = data.x_test[: cfg.n], data.y_test[: cfg.n]
    start = time.perf_counter()
    frame = run_diagnostics(as_target(loaded.name, loaded.module, x.to(device), data.classes), x, y,
                            source=None if source is None else
                            as_target(source.name, source.module, x.to(device), data.classes),
                            config=cfg, device=device, quiet=quiet)
    seconds = time.perf_counter() - start
    meta = {"model": loaded.name, "dataset": data.name, "device": device,
            "seconds": f"{seconds:.0f}", "robbench": __version__,
            "settings": ", ".join(f"{k}={v}" for k, v in cfg.as_dict().items())}
    write_report(frame, out_dir, meta)
    atomic_write_text(Path(out_dir) / "config.json",
                      json.dumps({"run": key, "seconds": round(seconds, 1)}, indent=2))
    return frame, seconds


def diagnose_named(spec: str, dataset: str, out_dir: str | Path, *,
                   config: DiagnoseConfig | None = None, device: str = "cpu",
                   data_dir: str | None = None, quiet: bool = False,
                   checkpoints: dict[str, str] | None = None,
                   normalize: dict[str, str] | None = None) -> tuple[pd.DataFrame, float]:
    """The checklist on the model ``spec`` names (transfer from the zoo's other model)."""
    data = load_dataset(dataset, data_dir)
    (loaded,) = load_models([spec], dataset, device=device, data_dir=data_dir,
                            checkpoints=checkpoints, normalize=normalize).values()
    return diagnose_loaded(loaded, data, out_dir, config=config, device=device, quiet=quiet,
                           source=transfer_source(loaded.name, dataset, device, data_dir))
