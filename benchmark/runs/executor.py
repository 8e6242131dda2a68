"""A benchmark run: a grid of cells (model x attack x eps) over model objects, resumable.

``execute`` takes the models themselves (any ``nn.Module`` mapping images in [0, 1] to
logits), detects which are random, crafts and scores every cell batch by batch (sharded over
torchrun's processes when there are several), and writes each finished cell to the run store.
Loading models and data by name is a thin layer in front (``robbench.runs.named``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from robbench.attacks.registry import (
    AUTO,
    check_backend,
    check_settings,
    craft_function,
    effective_params,
    get_attack,
    params_for,
)
from robbench.attacks.target import Target
from robbench.attacks.threat_model import perturbation_norms
from robbench.models.model_file import display_name
from robbench.models.normalized import input_normalization
from robbench.models.zoo import LoadedModel
from robbench.records.scoring import accuracy_fields
from robbench.records.store import ADV_KEEP, SCORING, RunStore, cell_id
from robbench.report.tables import comparison_table
from robbench.runs.batches import attack_work, clean_work, default_batch_size, run_batches
from robbench.runs.config import RunConfig, check_resumable, resolved_params
from robbench.runs.detection import detect_targets
from robbench.runs.distributed import SINGLE, World
from robbench.runs.eot_auto import CALIBRATION_EXAMPLES, choose_eot
from robbench.runs.model_contract import ModelContracts
from robbench.runs.seeding import SEEDING
from robbench.version import __version__


def data_sha256(x: torch.Tensor, y: torch.Tensor) -> str:
    """Identifies the evaluated images and labels (a resumed run must see the same ones)."""
    h = hashlib.sha256()
    for t in (x, y):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def execute(
    config: RunConfig,
    models: Mapping[str, LoadedModel],
    x: torch.Tensor,
    y: torch.Tensor,
    store: RunStore,
    *,
    device: str = "cpu",
    batch_size: int | None = None,
    quiet: bool = False,
    stochastic: bool | str | Mapping[str, bool | str] = "auto",
    companions: Mapping[str, LoadedModel] | None = None,
    classes: int | None = None,
    world: World = SINGLE,
) -> pd.DataFrame:
    """Run (or resume) every cell of ``config`` on ``models`` and the images ``x``, ``y``;
    returns the run's summary. ``stochastic`` forces a treatment (per model if a mapping);
    ``companions`` are extra source models for transfer attacks. ``batch_size`` None: the
    batches of the run being resumed, else :func:`~robbench.runs.batches.default_batch_size`."""
    _validate(config, models)
    x, y = x[: config.n] if config.n else x, y[: config.n] if config.n else y
    meta = store.read_meta() if world.main else None
    expected = config.expected_cells()  # _validate: models are named as in config
    done = store.done() if world.main else set()
    if batch_size is None:
        resumed = int(meta["batch_size"]) if meta and "batch_size" in meta else None
        batch_size = world.broadcast(resumed or default_batch_size(len(x)))
    if meta is not None:
        check_resumable(meta, config, store.label, batch_size, bool(expected - done))
        if meta.get("data_sha256") not in (None, data_sha256(x, y)):
            raise ValueError(f"run directory {store.label} was computed on other images; "
                             "remove it or choose another directory")
        _check_same_weights(meta, models, store.label, bool(expected - done))
    every = {**(companions or {}), **models}
    contracts = ModelContracts({name: m.module for name, m in every.items()}, classes,
                               at_least=int(y.max()) + 1)
    with contracts.attached():  # every pass of every model is checked, from the first
        targets = detect_targets(every, x, stochastic, contracts)
        unfinished = bool(expected - done)
        previous = meta
        meta = _meta(config, models, targets, previous, x, y, device, batch_size,
                     expected - done)
        run = _Run(config, store, x, y, device, batch_size, quiet, world, targets, meta)
        if world.main and (previous is None or unfinished):  # a finished run's record stays
            run.write_meta()
            for warning in meta["warnings"]:
                print(f"robbench: warning: {warning}", file=sys.stderr)
        for name in models:
            with contracts.stage(name, "its clean pass"):
                run.clean_cell(name)
            for attack in config.attacks:
                with contracts.stage(name, f"attack {attack}"):
                    run.attack_cells(name, attack)
    if world.main:
        store.discard_batches()
    return run.finish()


def _validate(config: RunConfig, models: Mapping[str, LoadedModel]) -> None:
    check_settings(config.attacks, config.params)
    check_backend(config.attacks, config.backend)
    for attack in config.attacks:  # a backend that is not installed fails before any cell
        craft_function(get_attack(attack), config.backend)
    names = [display_name(spec) for spec in config.models]
    if list(models) != names:
        raise ValueError(f"models {list(models)} do not match the config's {names}")
    for value in (config.draws, config.selection_draws):
        if value < 1:
            raise ValueError(f"draws {value} must be >= 1")


def _check_same_weights(meta: dict, models: Mapping[str, LoadedModel], label: str,
                        unfinished: bool) -> None:
    """A run resumes only on the weights it started with."""
    for name, loaded in models.items():
        pinned = meta.get("checkpoints", {}).get(name, {}).get("sha256")
        if unfinished and pinned and pinned != loaded.sha256:
            raise ValueError(f"run directory {label} evaluated {name} with weights "
                             f"{pinned[:12]}, these are {loaded.sha256[:12]}; remove it to "
                             "recompute")




def _meta(config, models, targets, previous, x, y, device, batch_size, missing) -> dict:
    devices = [device] if previous is None else sorted(
        set(previous.get("devices", [previous.get("device")])) | ({device} if missing else set()))
    return {
        "run_id": config.run_id(),
        "config": dataclasses.asdict(config),
        "robbench_version": __version__,
        "torch_version": torch.__version__,
        "device": device,
        "devices": devices,
        "batch_size": batch_size,
        "seeding": SEEDING,
        "scoring": SCORING,
        "checkpoints": {m: dict(models[m].checkpoint) for m in models},
        "models": {m: {"source": models[m].source, **targets[m][1].as_record(),
                       "clean_test_accuracy": models[m].card.get("clean_test_accuracy"),
                       **input_normalization(models[m].module)}
                   for m in models},
        "warnings": [targets[m][1].warning for m in models if targets[m][1].warning],
        "examples": len(x),
        "data_sha256": data_sha256(x, y),
        "attack_params": resolved_params(config),
        "eot_auto": dict((previous or {}).get("eot_auto", {})),
    }


class _Run:
    """One execution of a run: the cells of each model, in order."""

    def __init__(self, config, store, x, y, device, batch_size, quiet, world, targets, meta):
        self.config, self.store, self.x, self.y = config, store, x, y
        self.device, self.batch_size, self.quiet, self.world = device, batch_size, quiet, world
        self.targets, self.meta = targets, meta
        self.done = world.broadcast(store.done() if world.main else None)
        self.companions = {name: target for name, (target, _) in targets.items()}

    def write_meta(self) -> None:
        self.store.write_meta(self.meta)

    def common(self, name: str) -> dict[str, Any]:
        target = self.targets[name][0]
        sha = self.meta["checkpoints"][name]["sha256"]
        return {"dataset": self.config.dataset, "model": name, "checkpoint": sha[:12],
                "seed": self.config.seed, "stochastic": target.stochastic,
                "selection_draws": self.config.selection_draws if target.stochastic else 0,
                "scoring": SCORING, "seeding": SEEDING, "skipped": "", "version": __version__}

    def clean_cell(self, name: str) -> None:
        key = cell_id(name, "none", 0)
        if key in self.done:
            return
        target = self.targets[name][0]
        work = clean_work(target, self.x, self.y, key=key, seed=self.config.seed,
                          batch_size=self.batch_size, draws=self.config.draws,
                          selection_draws=self.config.selection_draws, device=self.device)
        batches = run_batches(self.store, key, len(self.x), self.batch_size, work,
                              world=self.world, desc=f"{name} clean", quiet=self.quiet)
        if not self.world.main:
            return
        outcomes, seconds = _assemble(batches, 0)
        record = {**self.common(name), "attack": "none", "backend": "none", "norm": "none",
                  "eps": 0.0, "steps": 0, "eot": 0, **_fields(outcomes, self.y),
                  "draws": int(outcomes["pred"].shape[0]), "seconds": round(seconds, 3)}
        outcomes.update(index=np.arange(len(self.y)), label=self.y.numpy(),
                        norm=np.zeros(len(self.y), dtype=np.float32))
        self._write(key, record, outcomes)
        self.store.discard_batches(key)

    def attack_cells(self, name: str, attack: str) -> None:
        spec = get_attack(attack)
        eps = self.config.eps_for(attack)
        keys = [cell_id(name, attack, e) for e in eps]
        if all(k in self.done for k in keys):
            return
        target = self.targets[name][0]
        reason = spec.unavailable(target) if spec.unavailable else None
        if reason is not None:
            return self._skip(name, attack, eps, reason)
        params = effective_params(target, params_for(attack, self.config.params))
        if params.get("eot") == AUTO:
            params["eot"] = self.eot_by_convergence(name, attack, target, params, eps[0])
        group = f"{name}__{attack}"
        work = attack_work(attack, target, self.x, self.y, eps, keys, group=group,
                           seed=self.config.seed, batch_size=self.batch_size,
                           draws=self.config.draws, selection_draws=self.config.selection_draws,
                           device=self.device, backend=self.config.backend, params=params,
                           companions=self.companions)
        desc = f"{name} {attack} eps={','.join(f'{e:g}' for e in eps)}"
        batches = run_batches(self.store, group, len(self.x), self.batch_size, work,
                              world=self.world, desc=desc, quiet=self.quiet)
        if not self.world.main:
            return
        clean = self.store.outcomes(cell_id(name, "none", 0))["pred"]
        for i, (e, key) in enumerate(zip(eps, keys, strict=True)):
            if key in self.done:
                continue
            outcomes, seconds = _assemble(batches, i)
            x_adv = torch.from_numpy(outcomes.pop("adv"))
            record = {**self.common(name), "attack": attack, "backend": self.config.backend,
                      "norm": spec.norm, "eps": float(e), "steps": int(params.get("steps", 1)),
                      "eot": int(params.get("eot", 1)), **_fields(outcomes, self.y),
                      "draws": int(outcomes["pred"].shape[0]),
                      "seconds": round(seconds / len(eps), 3)}
            outcomes.update(index=np.arange(len(self.y)), label=self.y.numpy(),
                            norm=perturbation_norms(self.x, x_adv, spec.norm).numpy(),
                            clean_pred=clean, adv_index=np.arange(min(ADV_KEEP, len(self.y))),
                            adv_x=x_adv[:ADV_KEEP].numpy().astype(np.float16))
            self._write(key, record, outcomes)
        self.store.discard_batches(group)

    def eot_by_convergence(self, name: str, attack: str, target: Target,
                           params: dict[str, Any], eps: float) -> int:
        """The number of EOT draws ``attack`` needs against ``target`` (recorded, so that a
        resumed run reuses it)."""
        key = f"{name}__{attack}"
        recorded = self.meta["eot_auto"].get(key)
        if recorded is not None:
            return int(recorded["chosen"])
        n = min(CALIBRATION_EXAMPLES, len(self.x))
        x, y = self.x[:n], self.y[:n]

        def measure(m: int) -> tuple[float, float]:
            group = f"{key}__calibration-eot{m}"
            work = attack_work(attack, target, x, y, [eps], [group], group=group,
                               seed=self.config.seed, batch_size=self.batch_size,
                               draws=self.config.draws, selection_draws=1,
                               device=self.device, backend=self.config.backend,
                               params={**params, "eot": m}, companions=self.companions)
            batches = run_batches(self.store, group, n, self.batch_size, work,
                                  world=self.world, desc=f"{name} {attack} EOT {m} (calibration)",
                                  quiet=self.quiet)
            result = None
            if self.world.main:
                fields = _fields(_assemble(batches, 0)[0], y)
                result = (fields["accuracy"], (fields["ci_high"] - fields["ci_low"]) / 2)
            return self.world.broadcast(result)

        choice = {**choose_eot(measure), "eps": eps, "examples": n}
        self.meta["eot_auto"][key] = choice
        if self.world.main:
            self.write_meta()
        return int(choice["chosen"])

    def _skip(self, name: str, attack: str, eps: list[float], reason: str) -> None:
        if not self.world.main:
            return
        spec = get_attack(attack)
        for e in eps:
            record = {**self.common(name), "attack": attack, "backend": self.config.backend,
                      "norm": spec.norm, "eps": float(e), "steps": 0, "eot": 0, "draws": 0,
                      "n": 0, "correct": float("nan"), "accuracy": float("nan"),
                      "skipped": reason, "seconds": 0.0}
            self._write(cell_id(name, attack, e), record, None)

    def _write(self, key: str, record: dict, outcomes: dict | None) -> None:
        self.store.write_cell(key, record, outcomes)
        self.done.add(key)
        write_summary(self.store)

    def finish(self) -> pd.DataFrame:
        return self.store.summary() if self.world.main else pd.DataFrame()


def _assemble(batches: dict[int, dict[str, torch.Tensor]], i: int
              ) -> tuple[dict[str, np.ndarray], float]:
    """Eps ``i``'s outcomes over all batches in order, and the batches' seconds."""
    starts = sorted(batches)
    out = {"pred": torch.cat([batches[s][f"pred_{i}"] for s in starts], dim=1).numpy()}
    if f"sel_{i}" in batches[starts[0]]:
        out["sel_pred"] = torch.cat([batches[s][f"sel_{i}"] for s in starts], dim=1).numpy()
    if f"adv_{i}" in batches[starts[0]]:
        out["adv"] = torch.cat([batches[s][f"adv_{i}"] for s in starts]).numpy()
    return out, float(sum(batches[s]["seconds"].item() for s in starts))


def _fields(outcomes: dict[str, np.ndarray], y: torch.Tensor) -> dict[str, float]:
    return accuracy_fields(outcomes["pred"], y.numpy())


def write_summary(store: RunStore) -> pd.DataFrame:
    """The run's summary.csv and summary.md from its finished cells."""
    frame = store.summary()
    store.write_summary(frame.to_csv(index=False), comparison_table(frame, "md"))
    return frame

