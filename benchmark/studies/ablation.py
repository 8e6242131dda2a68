"""Which settings of the Short Run classifier's recipe buy clean accuracy: a small grid, each
setting trained on the same subset of the training set and scored on the same test images.

Every setting is the registry's Short Run recipe for the dataset with a few settings changed
(sigma, the latent size d, K and delta, the BPTT epochs, the joint objective against the three
stages). The study resumes: a setting whose row is written is not trained again, and one whose
training was stopped continues from its last finished epoch (``robbench train --resume``).
Beside accuracy, each row gives the FLOPs of one attack step (a forward and backward through
the chain) relative to the first setting's, so a recipe that buys accuracy with a dearer chain
shows it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from robbench.atomic_write import atomic_write_text
from robbench.data.datasets import load_dataset
from robbench.models.checkpoint_io import load_checkpoint
from robbench.models.config import ModelSpec
from robbench.models.registry import (
    default_spec,
    override_spec,
    train_in_pieces,
    typed_overrides,
)
from robbench.models.training_loop import PieceLimit
from robbench.perf.chain import attack_step_cost
from robbench.records.scoring import accuracy_with_interval

# One change at a time from the registry's MNIST recipe (sigma 0.3, d = 32, K = 20,
# delta = 0.005; the committed grid ran with --base bptt_epochs=3, stages of 2/1/3 epochs).
# K = 40 doubles the cost of an attack step, the most the headlines can afford on a CPU.
DEFAULT_GRID: dict[str, dict[str, Any]] = {
    "base": {},
    "sigma-0.1": {"sigma": 0.1},
    "sigma-0.5": {"sigma": 0.5},
    "latent-16": {"latent": 16},
    "latent-64": {"latent": 64},
    "K-10-delta-0.01": {"langevin_steps": 10, "step_size": 0.01},
    "K-40-delta-0.0025": {"langevin_steps": 40, "step_size": 0.0025},
    "bptt-6": {"bptt_epochs": 6},
    "bptt-12": {"bptt_epochs": 12},
    "joint-6": {"objective": "joint", "epochs": 6},
}
COLUMNS = ["setting", "changes", "clean", "ci_low", "ci_high", "n", "step_flops_vs_first",
           "train_seconds", "train_stats", "fingerprint", "sha256"]


@dataclass
class AblationConfig:
    """The grid (setting name -> overrides), the overrides every setting shares, the training
    subset (labelled set and generative pool alike) and the test images scored."""

    dataset: str = "mnist"
    grid: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_GRID))
    base: dict[str, Any] = field(default_factory=dict)
    subset: int = 10_000
    n: int = 10_000
    seed: int = 0


def ablation_spec(cfg: AblationConfig, overrides: dict[str, Any]) -> ModelSpec:
    """The Short Run recipe of the dataset, on ``cfg.subset`` images, with the base and the
    setting's overrides."""
    spec = override_spec(default_spec("shortrun", cfg.dataset), labels=cfg.subset,
                         unlabelled=cfg.subset, seed=cfg.seed)
    spec = override_spec(spec, **typed_overrides(cfg.base))
    return override_spec(spec, **typed_overrides(overrides))


def run_ablation(
    cfg: AblationConfig,
    out_dir: str | Path,
    *,
    max_minutes: float | None = None,
    data_dir: str | Path | None = None,
    device: str = "cpu",
    quiet: bool = False,
    command: str | None = None,
) -> tuple[pd.DataFrame, bool]:
    """Train and score each setting without a row yet; (the rows, whether every one is done).

    Models and their training state go to OUT/models/; rows to OUT/ablation.csv and .md after
    each setting, and once all are done with this ``command`` at the table's head.
    ``max_minutes`` bounds this call: the training in progress stops at an epoch boundary and
    the next call resumes it.
    """
    out = Path(out_dir)
    specs = {name: ablation_spec(cfg, overrides) for name, overrides in cfg.grid.items()}
    rows = _finished_rows(out / "ablation.csv", specs)
    data = load_dataset(cfg.dataset, data_dir)
    n = min(cfg.n, len(data.x_test))
    first_flops = _step_flops(next(iter(specs.values())), device)
    start = time.perf_counter()
    for name, spec in specs.items():
        if name in rows:
            continue
        limit = None
        if max_minutes is not None:
            left = max_minutes - (time.perf_counter() - start) / 60
            if left <= 0:
                return _table(rows, specs), False
            limit = PieceLimit(minutes=left)
        path = out / "models" / f"{name}.safetensors"
        _, card = train_in_pieces(spec, path, resume=True, limit=limit, data_dir=data_dir,
                                  device=device, quiet=quiet, command=command)
        if card is None:
            return _table(rows, specs), False
        model, _ = load_checkpoint(path, device)
        torch.manual_seed(cfg.seed)
        clean, low, high = accuracy_with_interval(model, data.x_test[:n], data.y_test[:n], 1,
                                                  device=device)
        rows[name] = {"setting": name, "changes": _changes(cfg.grid[name]), "clean": clean,
                      "ci_low": low, "ci_high": high, "n": n,
                      "step_flops_vs_first": _step_flops(spec, device) / first_flops,
                      "train_seconds": card["train_seconds"],
                      "train_stats": _stats_text(card["train_stats"]),
                      "fingerprint": spec.fingerprint(), "sha256": card["sha256"][:12]}
        write_ablation(_table(rows, specs), out, cfg, command)
    # every row done: the table leads with this command, which regenerates it
    write_ablation(_table(rows, specs), out, cfg, command)
    return _table(rows, specs), True


def _finished_rows(csv: Path, specs: dict[str, ModelSpec]) -> dict[str, dict]:
    """Rows already written whose setting still trains the same spec."""
    if not csv.is_file():
        return {}
    frame = pd.read_csv(csv, dtype={"fingerprint": str, "sha256": str}, keep_default_na=False)
    return {row["setting"]: row for row in frame.to_dict("records")
            if row["setting"] in specs and row["fingerprint"] == specs[row["setting"]]
            .fingerprint()}


def _table(rows: dict[str, dict], specs: dict[str, ModelSpec]) -> pd.DataFrame:
    return pd.DataFrame([rows[name] for name in specs if name in rows], columns=COLUMNS)


def _step_flops(spec: ModelSpec, device: str) -> float:
    return attack_step_cost(spec, torch.device(device), 8, False)["attack_step_flops"]


def _changes(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "(the recipe)"


def _stats_text(stats: dict[str, float]) -> str:
    return ", ".join(f"{k.removesuffix('_loss') or k} {v:.4g}" for k, v in stats.items())


def write_ablation(frame: pd.DataFrame, out_dir: str | Path, cfg: AblationConfig,
                   command: str | None) -> Path:
    """ablation.csv (one row per finished setting) and ablation.md, led by the command."""
    out = Path(out_dir)
    atomic_write_text(out / "ablation.csv", frame.to_csv(index=False))
    base = _changes(cfg.base) if cfg.base else "none"
    text = (f"`{command}`\n\n{cfg.dataset}: each setting trained on {cfg.subset:,} training "
            f"images (labelled set and generative pool), scored by one chain on the first "
            f"{int(frame.n.max()) if len(frame) else cfg.n:,} test images (95% Wilson "
            f"interval); changes shared by every setting: {base}.\n\n"
            + frame.drop(columns=["fingerprint"]).to_markdown(index=False, floatfmt=".4g")
            + "\n")
    atomic_write_text(out / "ablation.md", text)
    return out / "ablation.md"
