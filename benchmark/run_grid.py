"""A benchmark run: a grid of cells (model x attack x eps), each written atomically, resumable.

Layout of a run directory::

    config.json          arguments, robbench version, checkpoint hashes, seeds
    cells/<cell>.json    one summary record per finished cell
    cells/<cell>.npz     its per-example outcomes: index, label, pred (R, N), norm; attacked
                         cells also clean_pred (R, N), the clean cell's predictions, and
                         adv_index / adv_x (float16), the first ADV_KEEP adversarial images
    summary.csv / .md    all finished cells, regenerated after each cell
    partial/             crafted batches of cells not yet written (see ``craft_progress``)
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from robbench import __version__
from robbench.attacks.registry import (
    backend_label,
    check_settings,
    craft,
    effective_params,
    get_attack,
    params_for,
)
from robbench.attacks.threat_model import perturbation_norms
from robbench.craft_progress import CraftProgress, discard_all
from robbench.datasets import load_dataset
from robbench.evaluation import accuracy_fields, predict_draws
from robbench.models.checkpoint_io import atomic_write_bytes
from robbench.models.registry import load_model

ADV_KEEP = 16
"""Adversarial images kept per attacked cell (for plots), as float16."""

SUMMARY_COLUMNS = [
    "dataset", "model", "checkpoint", "attack", "backend", "norm", "eps", "steps", "eot",
    "draws", "seed", "n", "correct", "accuracy", "ci_low", "ci_high", "seconds", "version",
]


@dataclass
class RunConfig:
    """What a run evaluates; equal configs share a run id, which is what makes runs resumable."""

    dataset: str = "digits"
    models: list[str] = field(default_factory=lambda: ["convnet", "shortrun"])
    attacks: list[str] = field(default_factory=lambda: ["pgd"])
    eps: list[float] | None = None
    n: int | None = None
    draws: int = 10
    seed: int = 0
    backend: str = "torchattacks"
    params: dict[str, Any] = field(default_factory=dict)

    def run_id(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return f"{self.dataset}-{'+'.join(self.attacks)}-{hashlib.sha256(blob).hexdigest()[:8]}"

    def eps_for(self, attack: str) -> list[float]:
        return list(self.eps) if self.eps else list(get_attack(attack).default_eps)

    def differences(self, other: RunConfig) -> dict[str, tuple[Any, Any]]:
        """{setting: (this value, other's)} where the two configs compute different cells (eps
        left to the defaults or spelled out as them are the same run); empty if none."""
        def spelled(c: RunConfig) -> dict[str, Any]:
            return {**dataclasses.asdict(c), "eps": {a: c.eps_for(a) for a in c.attacks}}
        mine, theirs = spelled(self), spelled(other)
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}


def cell_id(model: str, attack: str, eps: float) -> str:
    return f"{model}__{attack}__{eps:g}"


def cell_seed(seed: int, key: str) -> int:
    return (seed * 1_000_003 + int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)) % 2**31


def write_cell(cells_dir: Path, key: str, record: dict, outcomes: dict[str, np.ndarray]) -> None:
    """Outcomes first, then the record: a cell counts as finished only once its JSON exists.
    The run's summary follows, so that it lists every finished cell of a stopped run."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **outcomes)
    atomic_write_bytes(cells_dir / f"{key}.npz", buffer.getvalue())
    atomic_write_bytes(cells_dir / f"{key}.json", json.dumps(record, indent=2).encode())
    write_summary(cells_dir.parent)


def read_cells(run_dir: Path) -> list[dict]:
    """Records of every finished cell of a run (half-written temp files are never read)."""
    cells = sorted((Path(run_dir) / "cells").glob("*.json"))
    return [json.loads(p.read_text()) for p in cells]


def load_outcomes(run_dir: Path, key: str) -> dict[str, np.ndarray]:
    with np.load(Path(run_dir) / "cells" / f"{key}.npz") as data:
        return {k: data[k] for k in data.files}


def write_summary(run_dir: Path) -> pd.DataFrame:
    from robbench.tables import comparison_table

    frame = pd.DataFrame(read_cells(run_dir), columns=SUMMARY_COLUMNS)
    frame = frame.sort_values(["model", "attack", "eps"], kind="stable")
    atomic_write_bytes(run_dir / "summary.csv", frame.to_csv(index=False).encode())
    atomic_write_bytes(run_dir / "summary.md", comparison_table(frame, "md").encode())
    return frame


def execute(
    config: RunConfig,
    out_dir: str | Path = "results/runs",
    *,
    device: str = "cpu",
    batch_size: int = 500,
    data_dir: str | None = None,
    quiet: bool = False,
    run_dir: str | Path | None = None,
) -> tuple[Path, pd.DataFrame]:
    """Run (or resume) every cell of ``config``; returns the run directory and its summary.

    The run lives in ``out_dir/<run id>`` unless ``run_dir`` names it; an existing run directory
    is resumed only if it was started with the same config.
    """
    for attack in config.attacks:
        get_attack(attack)
    check_settings(config.attacks, config.params)
    run_dir = Path(run_dir) if run_dir is not None else Path(out_dir) / config.run_id()
    resolved = resolved_params(config)
    if (run_dir / "config.json").is_file():
        differ = load_run_config(run_dir).differences(config)
        if differ:
            shown = "; ".join(f"{k} {there!r} there, {asked!r} asked"
                              for k, (there, asked) in differ.items())
            raise ValueError(f"run directory {run_dir} holds a different run ({shown}); a run "
                             f"resumes only with the settings it was started with: remove it "
                             f"or choose another directory")
        check_unchanged_settings(run_dir, resolved)
    data = load_dataset(config.dataset, data_dir)
    n = len(data.x_test) if config.n is None else min(config.n, len(data.x_test))
    x, y = data.x_test[:n], data.y_test[:n]
    models, cards = {}, {}
    for name in config.models:
        models[name], cards[name] = load_model(name, config.dataset, device=device, quiet=quiet,
                                                data_dir=data_dir)
    cells_dir = run_dir / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    companions = dict(models)  # source models of transfer attacks (the other model)
    if any(get_attack(a).needs_companions for a in config.attacks):
        from robbench.models.config import MODEL_NAMES

        for name in MODEL_NAMES:
            if name not in companions:
                companions[name], _ = load_model(name, config.dataset, device=device,
                                                 quiet=quiet, data_dir=data_dir)
    done = {p.stem for p in cells_dir.glob("*.json")}
    expected = {cell_id(m, "none", 0) for m in config.models} | {
        cell_id(m, a, e) for m in config.models for a in config.attacks for e in config.eps_for(a)}
    previous = run_devices(run_dir) if (run_dir / "config.json").is_file() else None
    # Every device that computed cells of this run stays on record when it is resumed elsewhere.
    devices = [device] if previous is None else sorted(
        set(previous) | ({device} if expected - done else set()))
    meta = {
        "run_id": config.run_id(),
        "config": dataclasses.asdict(config),
        "robbench_version": __version__,
        "torch_version": torch.__version__,
        "device": device,
        "devices": devices,
        "checkpoints": {m: {"sha256": c["sha256"], "path": c.get("path"),
                            "clean_test_accuracy": c.get("clean_test_accuracy")}
                        for m, c in cards.items()},
        "examples": n,
        "attack_params": resolved,
    }
    if previous is None or expected - done:
        atomic_write_bytes(run_dir / "config.json", json.dumps(meta, indent=2).encode())
    common = {"dataset": config.dataset, "draws": config.draws, "seed": config.seed,
              "version": __version__}
    for name, model in models.items():
        common_m = {**common, "model": name, "checkpoint": cards[name]["sha256"][:12]}
        if cell_id(name, "none", 0) not in done:
            _clean_cell(model, x, y, config, cells_dir, common_m, batch_size)
        clean_pred = load_outcomes(run_dir, cell_id(name, "none", 0))["pred"]
        for attack in config.attacks:
            missing = [e for e in config.eps_for(attack) if cell_id(name, attack, e) not in done]
            if missing:
                _attack_cells(model, attack, missing, x, y, config, cells_dir, common_m,
                              batch_size, quiet, clean_pred, companions)
    discard_all(run_dir)  # every cell is written (one left over if a run stopped right after)
    return run_dir, write_summary(run_dir)


def resolved_params(config: RunConfig) -> dict[str, dict[str, Any]]:
    """Every attack's settings as the run uses them (its overrides on the defaults), JSON-plain."""
    return {a: json.loads(json.dumps(params_for(a, config.params))) for a in config.attacks}


def check_unchanged_settings(run_dir: Path, resolved: dict[str, dict[str, Any]]) -> None:
    """Refuse to resume a run whose attacks would now run with other settings (a changed default),
    which would mix two settings in one table. Runs written before robbench kept the settings in
    ``config.json`` are checked on the steps their cells record."""
    meta = json.loads((run_dir / "config.json").read_text())
    pinned = meta.get("attack_params")
    if pinned is None:
        for rec in read_cells(run_dir):
            now = resolved.get(rec["attack"], {}).get("steps", 1)
            if rec["attack"] in resolved and int(rec["steps"]) != int(now):
                raise ValueError(f"run directory {run_dir} ran {rec['attack']} with "
                                 f"{rec['steps']} steps, the settings now give {now}; "
                                 "remove it to recompute")
        return
    for attack, params in resolved.items():
        if attack in pinned and pinned[attack] != params:
            raise ValueError(f"run directory {run_dir} ran {attack} with {pinned[attack]}, the "
                             f"settings now give {params}; remove it to recompute")


def _clean_cell(model, x, y, config, cells_dir, common, batch_size) -> None:
    key = cell_id(common["model"], "none", 0)
    torch.manual_seed(cell_seed(config.seed, key))
    start = time.perf_counter()
    preds = predict_draws(model, x, config.draws, batch_size)
    seconds = time.perf_counter() - start
    record = _record(common, preds, y, attack="none", backend="none", norm="none", eps=0.0,
                     steps=0, eot=0, seconds=seconds)
    write_cell(cells_dir, key, record,
               {"index": np.arange(len(y)), "label": y.numpy(), "pred": preds.numpy(),
                "norm": np.zeros(len(y), dtype=np.float32)})


def _attack_cells(model, attack, eps_list, x, y, config, cells_dir, common, batch_size,
                  quiet, clean_pred, companions=None) -> None:
    spec = get_attack(attack)
    params = params_for(attack, config.params)
    group_key = f"{common['model']}__{attack}"
    progress = CraftProgress.find(cells_dir.parent, group_key, eps_list,
                                  config.eps_for(attack), len(x), batch_size)
    crafted = progress.eps  # eps_list, or all eps of a group whose cells were partly written
    torch.manual_seed(cell_seed(config.seed, group_key + "".join(f"{e:g}" for e in crafted)))
    device = next(model.parameters()).device
    adv, craft_seconds, first = progress.resume(device)
    desc = f"{common['model']} {attack} eps={','.join(f'{e:g}' for e in crafted)}"
    bar = tqdm(total=len(x), initial=first, desc=desc, disable=quiet, unit="ex", leave=False)
    for i in range(first, len(x), batch_size):
        start = time.perf_counter()
        xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
        batch = {e: x_adv.cpu() for e, x_adv in craft(
            attack, model, xb, yb, crafted, backend=config.backend, params=params,
            companions=companions).items()}
        seconds = time.perf_counter() - start
        progress.keep(i, batch, seconds, device)
        craft_seconds += seconds
        for e in crafted:
            adv[e].append(batch[e])
        bar.update(len(xb))
    bar.close()
    craft_seconds /= len(crafted)
    ran = effective_params(spec, model, params)
    label = backend_label(spec, config.backend, ran)
    eot = ran.get("eot", 1)
    for e in eps_list:
        key = cell_id(common["model"], attack, e)
        torch.manual_seed(cell_seed(config.seed, key))
        x_adv = torch.cat(adv[e])
        start = time.perf_counter()
        preds = predict_draws(model, x_adv, config.draws, batch_size)
        seconds = craft_seconds + time.perf_counter() - start
        record = _record(common, preds, y, attack=attack, backend=label, norm=spec.norm, eps=e,
                         steps=params.get("steps", 1), eot=eot, seconds=seconds)
        write_cell(cells_dir, key, record,
                   {"index": np.arange(len(y)), "label": y.numpy(), "pred": preds.numpy(),
                    "norm": perturbation_norms(x, x_adv, spec.norm).numpy(),
                    "clean_pred": clean_pred, "adv_index": np.arange(min(ADV_KEEP, len(y))),
                    "adv_x": x_adv[:ADV_KEEP].numpy().astype(np.float16)})
    progress.discard()


def _record(common, preds, y, *, attack, backend, norm, eps, steps, eot, seconds) -> dict:
    return {**common, "attack": attack, "backend": backend, "norm": norm, "eps": float(eps),
            "steps": int(steps), "eot": int(eot), "draws": int(preds.shape[0]),
            **accuracy_fields(preds, y), "seconds": round(seconds, 3)}


def run_devices(run_dir: str | Path) -> list[str]:
    """The devices that computed a run's cells (runs written before robbench recorded them all
    name only the last one, ``device``)."""
    meta = json.loads((Path(run_dir) / "config.json").read_text())
    return meta.get("devices", [meta["device"]])


def load_run_config(run_dir: Path) -> RunConfig:
    """The RunConfig a run directory was started with (for ``--resume``)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"run {run_dir} has no config.json; is the run id right?")
    return RunConfig(**json.loads(path.read_text())["config"])


def read_summary(run_dir: Path) -> pd.DataFrame:
    """All finished cells of a run as a summary frame."""
    if not (Path(run_dir) / "cells").is_dir():
        raise FileNotFoundError(f"{run_dir} is not a robbench run directory (no cells/)")
    return pd.DataFrame(read_cells(run_dir), columns=SUMMARY_COLUMNS)
