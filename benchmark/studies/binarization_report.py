"""The binarization test on a model given by name, and its results file.

Each run is one row of ``OUT/binarization.csv`` (a row of the same model, dataset, attack,
setting, eps and seed is replaced, so several commands build one table), its per-image outcomes
in ``OUT/samples/``, and the table as ``OUT/binarization.md``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd

from robbench.atomic_write import atomic_write_text
from robbench.data.datasets import load_dataset
from robbench.runs.detection import as_target
from robbench.runs.named import load_models
from robbench.studies.binarization import (
    BinarizationConfig,
    BinarizationResult,
    run_binarization_test,
)

KEY = ["model", "dataset", "attack", "setting", "eps", "seed"]
COLUMNS = [*KEY, "images", "valid", "invalid", "held_out_boundary", "success", "success_low",
           "success_high", "threshold", "status", "detail", "seconds"]


def result_row(result: BinarizationResult, model: str, dataset: str, seed: int,
               seconds: float) -> dict:
    """The record of one test; ``held_out_boundary`` is the mean over the valid constructions
    of the fraction of held-out boundary points their readout puts on the boundary side (the
    larger, the easier the test)."""
    valid = result.samples["valid"].astype(bool)
    easy = result.samples.loc[valid, "held_out_boundary"].astype(float).mean()
    return {"model": model, "dataset": dataset, "attack": result.attack,
            "setting": result.setting, "eps": result.eps, "seed": seed,
            "images": result.valid + result.invalid, "valid": result.valid,
            "invalid": result.invalid, "held_out_boundary": easy, "success": result.rate,
            "success_low": result.low, "success_high": result.high, "threshold": result.threshold,
            "status": result.status, "detail": result.summary(), "seconds": round(seconds, 1)}


def samples_name(row: dict) -> str:
    """The per-image file of a row: its model, attack setting, eps and seed as a file name."""
    text = f"{row['model']}-{row['setting']}-eps{row['eps']:g}-seed{row['seed']}"
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") + ".csv"


def markdown(frame: pd.DataFrame) -> str:
    """The results table, rates in percent."""
    shown = frame.drop(columns=["detail"]).copy()
    for col in ("held_out_boundary", "success", "success_low", "success_high", "threshold"):
        shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{100 * v:.1f}%")
    shown["status"] = shown["status"].map(lambda s: "**FAIL**" if s == "FAIL" else s)
    return ("# The binarization test (Zimmermann et al. 2022)\n\n" + shown.to_markdown(index=False)
            + "\n\nsuccess: the attack's success rate on the valid constructions (on a random "
              "model, at least half of R fresh passes say 'boundary'; a construction counts "
              "only if R passes put x inside and the planted point outside beyond doubt), "
              "with its 95% Wilson interval; PASS when the interval reaches the threshold. "
              "held_out_boundary: the mean fraction of held-out "
              "boundary points the readouts put on the boundary side (the larger, the easier "
              "the test). Per-image outcomes: samples/.\n")


def record_result(out_dir: str | Path, row: dict, samples: pd.DataFrame) -> Path:
    """Write ``row`` into ``out_dir``/binarization.csv (replacing one with its key), its
    samples, and the Markdown table (atomic writes)."""
    out = Path(out_dir)
    path = out / "binarization.csv"
    frame = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=COLUMNS)
    same = (frame[KEY].astype(str) == pd.Series({k: str(row[k]) for k in KEY})).all(axis=1)
    new = pd.DataFrame([row], columns=COLUMNS)
    if same.any():  # in the place of the row it replaces
        at = int(same.to_numpy().argmax())
        frame = pd.concat([frame.iloc[:at], new, frame.iloc[at + 1:]], ignore_index=True)
    else:
        frame = pd.concat([frame, new], ignore_index=True)
    frame = frame.reindex(columns=COLUMNS)  # a file of an older layout gets the current one
    atomic_write_text(out / "samples" / samples_name(row), samples.to_csv(index=False))
    atomic_write_text(path, frame.to_csv(index=False))
    atomic_write_text(out / "binarization.md", markdown(frame))
    return path


def binarization_named(spec: str, dataset: str, out_dir: str | Path, *, eps: float,
                       config: BinarizationConfig | None = None, pool: int = 100,
                       seed: int = 0, device: str = "cpu",
                       data_dir: str | None = None, quiet: bool = False,
                       checkpoints: dict[str, str] | None = None,
                       normalize: dict[str, str] | None = None) -> dict:
    """The test on the model ``spec`` names, on the first ``config.n`` correctly classified
    of the first ``pool`` test images; its row is recorded in ``out_dir``."""
    data = load_dataset(dataset, data_dir)
    (loaded,) = load_models([spec], dataset, device=device, data_dir=data_dir, quiet=quiet,
                            checkpoints=checkpoints, normalize=normalize).values()
    x, y = data.x_test[:pool].to(device), data.y_test[:pool].to(device)
    target = as_target(loaded.name, loaded.module, x, data.classes)
    start = time.perf_counter()
    result = run_binarization_test(target, x, y, eps, config=config, seed=seed,
                                   device=device)
    row = result_row(result, loaded.name, data.name, seed, time.perf_counter() - start)
    record_result(out_dir, row, result.samples)
    return row
