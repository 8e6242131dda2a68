"""The loop that runs a training recipe's stages: in one piece, or in pieces that save their
state after every epoch and resume from the last finished one with the same result."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from robbench.models.config import ModelSpec, TrainConfig
from robbench.models.shortrun import ShortRunClassifier
from robbench.models.training import (
    Stage,
    accuracy,
    annealed_lr_factor,
    make_optimizer,
    select_subsets,
    training_stages,
)
from robbench.models.training_state import (
    StateStore,
    TrainingProgress,
    TrainingStateError,
    capture_rng,
    first_difference,
    restore_rng,
)


def _batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    for i in range(0, n, batch_size):
        yield perm[i : i + batch_size]



@dataclass(frozen=True)
class PieceLimit:
    """Where a piece of a resumable training stops: always at an epoch boundary and after at
    least one epoch; after ``epochs`` passes, or before a pass that would end past ``minutes``
    (its length estimated by the last pass of the same stage, else the longest one so far)."""

    minutes: float | None = None
    epochs: int | None = None

    def stops(self, passes: int, elapsed: float, estimate: float | None) -> bool:
        """Whether the piece stops now, after ``passes`` passes and ``elapsed`` seconds."""
        if passes == 0:
            return False
        if self.epochs is not None and passes >= self.epochs:
            return True
        return (self.minutes is not None and estimate is not None
                and elapsed + estimate > 60 * self.minutes)


def train_model(
    model: nn.Module,
    spec: ModelSpec,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    device: torch.device | str = "cpu",
    quiet: bool = False,
) -> dict[str, float]:
    """Train ``model`` in place as ``spec.train`` says, in one piece; returns each stage's
    final loss and the training seconds."""
    progress = train_resumable(model, spec, x, y, device=device, quiet=quiet)
    return {**progress.stats, "train_seconds": progress.seconds}


def train_resumable(
    model: nn.Module,
    spec: ModelSpec,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    device: torch.device | str = "cpu",
    quiet: bool = False,
    store: StateStore | None = None,
    resume: bool = False,
    limit: PieceLimit | None = None,
    command: str | None = None,
    monitor: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> TrainingProgress:
    """Train ``model`` in place as ``spec.train`` says, as one piece of a training.

    With a ``store``, the state is saved there after every pass; ``resume`` continues from it
    (refused, naming the setting, if it was started with other settings) and ends with the
    weights of a training that never stopped. ``limit`` ends the piece early at an epoch
    boundary: the progress returned is then not ``finished``. ``monitor`` (images, labels) is
    classified after every epoch of a labelled stage, its accuracy kept in the epoch's history
    (the learning curve), with the training's random streams left as they were.
    """
    t = spec.train
    torch.manual_seed(t.seed)
    gen = torch.Generator().manual_seed(t.seed)
    model.to(device).train()
    x_lab, y_lab, x_pool = select_subsets(spec, x, y)
    stages = training_stages(model, t)
    progress, saved = _starting_point(model, spec, store, resume, gen)
    piece = {"command": command, "device": str(device),
             "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "from": progress.position(), "to": progress.position(), "epochs": 0,
             "seconds": 0.0}
    progress.pieces.append(piece)
    run = _Piece(progress, piece, store, limit, gen, device, quiet, t, monitor)
    try:
        while progress.stage < len(stages) and not run.stopped:
            stage = stages[progress.stage]
            data = (x_lab, y_lab) if stage.labelled else (x_pool, None)
            run.stage(model, stage, *data, saved, len(stages))
            saved = None
    finally:
        if isinstance(model, ShortRunClassifier):
            model.generator.requires_grad_(True)
        model.eval()
    if piece["epochs"] == 0:
        progress.pieces.pop()
    progress.finished = progress.stage == len(stages)
    return progress


def _starting_point(
    model: nn.Module, spec: ModelSpec, store: StateStore | None, resume: bool,
    gen: torch.Generator,
) -> tuple[TrainingProgress, dict | None]:
    """A fresh progress, or the stored one with the model and random states restored."""
    fresh = TrainingProgress(json.loads(json.dumps(spec.to_dict())))
    if store is None or not store.exists():
        return fresh, None
    progress, saved = store.load()
    if not resume:
        if not progress.finished:
            raise TrainingStateError(
                f"{store.directory} holds an unfinished training (at {progress.position()}); "
                "resume it, or delete the directory to start over")
        return fresh, None
    difference = first_difference(progress.spec, fresh.spec)
    if difference:
        raise TrainingStateError(f"cannot resume the training in {store.directory}: it was "
                                 f"started with {difference}; resume with its settings, or "
                                 "delete the directory to start over")
    model.load_state_dict(saved["model"])
    restore_rng(saved["rng"], gen)
    return progress, saved


def _stage_schedule(opt, cfg: TrainConfig, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: annealed_lr_factor(step, total_steps, cfg.anneal_from)
    )


class _Piece:
    """The passes of one piece: each saved when it ends, the limit checked before each."""

    def __init__(self, progress, piece, store, limit, gen, device, quiet, cfg, monitor=None
                 ) -> None:
        self.progress, self.piece, self.store, self.limit = progress, piece, store, limit
        self.gen, self.device, self.quiet, self.cfg = gen, device, quiet, cfg
        self.monitor = monitor
        self.base_seconds = progress.seconds
        self.start = time.perf_counter()
        self.stopped = False

    def stage(self, model, stage: Stage, x, y, saved: dict | None, n_stages: int) -> None:
        """Run ``stage`` from the progress's epoch to its end, or until the limit stops it."""
        p, cfg = self.progress, self.cfg
        if isinstance(model, ShortRunClassifier):
            model.generator.requires_grad_(stage.train_generator)
        total_steps = round(stage.epochs * math.ceil(len(x) / cfg.batch_size))
        opt = make_optimizer(stage.params(model), cfg, stage.lr)
        schedule = _stage_schedule(opt, cfg, total_steps)
        if saved is not None and p.epoch > 0:
            opt.load_state_dict(saved["optimizer"])
            schedule.load_state_dict(saved["scheduler"])
        p.stats.setdefault(stage.stat, float("nan"))
        passes = math.ceil(stage.epochs)
        if passes == 0:  # a stage of no epochs: nothing to run or save
            p.stage, p.epoch, p.steps = p.stage + 1, 0, 0
            return
        bar = tqdm(total=passes, initial=p.epoch, desc=stage.desc, leave=False,
                   disable=self.quiet or total_steps == 0)
        while p.epoch < passes:
            elapsed = time.perf_counter() - self.start
            if self.limit and self.limit.stops(self.piece["epochs"], elapsed, self._estimate()):
                self.stopped = True
                break
            began, began_cpu = time.perf_counter(), time.process_time()
            taken, loss, correct = _train_pass(model, opt, schedule, x, y, self.gen,
                                               self.device, stage.loss_fn, cfg,
                                               total_steps - p.steps)
            ended = taken == 0 or p.epoch + 1 == passes
            if taken:
                p.epoch, p.steps = p.epoch + 1, p.steps + taken
                p.stats[stage.stat] = loss
                p.history.append({"stage": stage.name, "epoch": p.epoch, "loss": loss,
                                  "train_accuracy": correct, "steps": taken,
                                  "seconds": round(time.perf_counter() - began, 3),
                                  "cpu_seconds": round(time.process_time() - began_cpu, 3)})
                if self.monitor is not None and y is not None:
                    p.history[-1]["monitor_accuracy"] = self._monitored(model)
                bar.update(1)
                bar.set_postfix({"loss": f"{loss:.4f}"}
                                | ({} if correct is None else {"acc": f"{correct:.3f}"}))
            if ended:
                p.stage, p.epoch, p.steps = p.stage + 1, 0, 0
            self._save(model, opt, schedule, n_stages)
            if ended:
                break
        bar.close()

    def _monitored(self, model: nn.Module) -> float:
        """Accuracy on the monitor set, drawing the chain's noise from a forked random state."""
        devices = [torch.device(self.device).index or 0] if torch.device(
            self.device).type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            acc = accuracy(model, *self.monitor)
        model.train()
        return acc

    def _estimate(self) -> float | None:
        history = self.progress.history
        if not history:
            return None
        if self.progress.epoch > 0:  # the last pass was one of this stage
            return history[-1]["seconds"]
        return max(h["seconds"] for h in history)

    def _save(self, model, opt, schedule, n_stages: int) -> None:
        p, piece = self.progress, self.piece
        piece["epochs"] += 1
        piece["seconds"] = round(time.perf_counter() - self.start, 2)
        piece["to"] = p.position() if p.stage < n_stages else "finished"
        p.seconds = round(self.base_seconds + piece["seconds"], 2)
        p.finished = p.stage == n_stages
        if self.store is not None:
            payload = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                       "scheduler": schedule.state_dict(), "rng": capture_rng(self.gen)}
            self.store.save(p, payload)


def _train_pass(model, opt, schedule, x, y, gen, device, loss_fn, cfg, steps_left: int
                ) -> tuple[int, float, float | None]:
    """One pass over ``x`` in the data-order generator's order, ending after ``steps_left``
    steps; returns (steps taken, mean loss, training accuracy or None without labels). The
    order is drawn even when no step is left, as every pass draws it."""
    total, seen, correct, taken = 0.0, 0, 0, 0
    for idx in _batches(len(x), cfg.batch_size, gen):
        if taken == steps_left:
            break
        xb = x[idx].to(device)
        yb = y[idx].to(device) if y is not None else None
        loss, logits = loss_fn(model, xb, yb, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        taken += 1
        total += loss.item() * len(idx)
        seen += len(idx)
        if logits is not None:
            correct += (logits.argmax(1) == yb).sum().item()
    if taken == 0:
        return 0, float("nan"), None
    return taken, total / seen, (correct / seen if y is not None else None)
