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
from robbench.studies.diagnostics import (
    RERUNNABLE,
    DiagnoseConfig,
    config_from_settings,
    run_diagnostics,
)
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
    write_report(frame, out_dir, report_meta(key, device, seconds))
    atomic_write_text(Path(out_dir) / "config.json",
                      json.dumps({"run": key, "seconds": round(seconds, 1)}, indent=2))
    return frame, seconds


def report_meta(key: dict[str, Any], device: str, seconds: float,
                rerun: dict[str, float] | None = None) -> dict[str, str]:
    """The lines heading diagnostics.md: what ran, where, how long, with which settings."""
    meta = {"model": key["model"], "dataset": key["dataset"], "device": device,
            "seconds": f"{seconds:.0f}", "robbench": key["robbench"]}
    for check, took in (rerun or {}).items():
        meta[f"rerun alone: {check}"] = f"{took:.0f} s"
    settings = config_from_settings(key["settings"]).as_dict()
    return {**meta, "settings": ", ".join(f"{k}={v}" for k, v in settings.items())}


def rerun_check(check: str, out_dir: str | Path, *, device: str = "cpu",
                  data_dir: str | None = None, quiet: bool = False
                  ) -> tuple[pd.DataFrame, float]:
    """Rerun the one check ``check`` of the report in ``out_dir`` with the current code, on
    the model, weights, data and settings its config.json records (settings added since at
    their defaults), and put its rows in the place of the old ones; the other rows, and the
    settings they depend on, are kept. For a check whose method changed, this costs its own
    time rather than the whole checklist's."""
    if check not in RERUNNABLE:
        raise ValueError(f"check {check!r} cannot run alone; allowed: {', '.join(RERUNNABLE)}")
    out = Path(out_dir)
    path = out / "config.json"
    if not (path.is_file() and (out / "diagnostics.csv").is_file()):
        raise ValueError(f"{out} holds no diagnostics report (config.json and diagnostics.csv "
                         "of `robbench diagnose` or `robbench headline`)")
    record = json.loads(path.read_text())
    old = record["run"]
    cfg = config_from_settings(old["settings"])
    data = load_dataset(old["dataset"], data_dir)
    (loaded,) = load_models([old["model"]], old["dataset"], device=device, data_dir=data_dir,
                            quiet=quiet).values()
    if loaded.sha256 != old["checkpoint"]:
        raise ValueError(f"{old['model']} on {old['dataset']} is not the model of the report "
                         f"in {out} (weights {loaded.sha256[:12]}, report "
                         f"{old['checkpoint'][:12]}); run the whole checklist")
    x, y = data.x_test[: cfg.n], data.y_test[: cfg.n]
    start = time.perf_counter()
    fresh = run_diagnostics(as_target(loaded.name, loaded.module, x.to(device), data.classes),
                            x, y, config=cfg, device=device, quiet=quiet, only=check)
    seconds = time.perf_counter() - start
    frame = pd.read_csv(out / "diagnostics.csv")
    text = ["check", "attack", "setting", "status", "detail"]
    frame[text] = frame[text].fillna("")  # as written: an empty text cell is not a missing one
    stale = frame["check"].isin(fresh["check"])
    at = int(stale.to_numpy().argmax()) if stale.any() else len(frame)
    kept = frame[~stale]
    frame = pd.concat([kept.iloc[:at], fresh, kept.iloc[at:]], ignore_index=True)
    key = run_key(old["model"], old["dataset"], cfg, old["checkpoint"])
    rerun = {**record.get("rerun", {}), check: round(seconds, 1)}
    write_report(frame, out, report_meta(key, device, record["seconds"], rerun))
    atomic_write_text(path, json.dumps({"run": key, "seconds": record["seconds"],
                                        "rerun": rerun}, indent=2))
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
