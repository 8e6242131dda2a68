"""Crafting and scoring a cell group batch by batch: each batch from its own random stream,
kept as soon as it is done, shared out over ranks.

A cell group is one model under one attack at every eps of the run (or a model's clean cell).
A batch's work crafts its adversarial images at every eps and scores each with the run's R
evaluation passes and, for a random model, its R_sel selection passes; its tensors are kept in
the run store's ``partial/`` as soon as they exist, so an interrupted run loses at most the
batches in flight and a rerun, with any number of processes, computes only the rest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from robbench.attacks.registry import craft
from robbench.attacks.target import Target
from robbench.records.scoring import predict_draws
from robbench.records.store import RunStore
from robbench.runs.distributed import SINGLE, RankFailed, World, round_robin
from robbench.runs.seeding import seed_stream

BatchWork = Callable[[int], dict[str, torch.Tensor]]

DEFAULT_SHARDS = 8
"""A run's default batches are sized so that this many processes find work in it."""
DEFAULT_BATCH_RANGE = (25, 500)


def default_batch_size(n: int) -> int:
    """Images per batch when none is given: n / 8 rounded up, kept within 25-500 (at most n).

    It depends on n alone, because a batch's random draws come from its own stream: a run
    keeps the same outcomes at any world size, and up to 8 torchrun processes share even a
    run of a few hundred images (batches of 500 left all but one idle)."""
    low, high = DEFAULT_BATCH_RANGE
    return max(1, min(n, max(low, min(high, math.ceil(n / DEFAULT_SHARDS)))))


def score_batch(target: Target, x: torch.Tensor, y: torch.Tensor, draws: int,
                selection_draws: int, seed: int, key: str, start: int, device: str
                ) -> dict[str, torch.Tensor]:
    """``pred`` (R, b) from the evaluation passes and, for a random model, ``sel`` (R_sel, b)
    from independent selection passes; a deterministic model is classified once."""
    seed_stream(seed, key, start, "eval")
    if not target.stochastic:
        return {"pred": predict_draws(target.model, x, 1, len(x), device)}
    pred = predict_draws(target.model, x, draws, len(x), device)
    seed_stream(seed, key, start, "select")
    return {"pred": pred, "sel": predict_draws(target.model, x, selection_draws, len(x), device)}


def attack_work(attack: str, target: Target, x: torch.Tensor, y: torch.Tensor,
                eps: Sequence[float], keys: Sequence[str], *, group: str, seed: int,
                batch_size: int, draws: int, selection_draws: int, device: str, backend: str,
                params: dict[str, Any], companions: Mapping[str, Target] | None
                ) -> BatchWork:
    """The work of one batch of an attack's cell group: adv_i, pred_i, sel_i per eps i, and
    the seconds crafting and scoring took."""
    def work(start: int) -> dict[str, torch.Tensor]:
        begin = time.perf_counter()
        xb = x[start : start + batch_size].to(device)
        yb = y[start : start + batch_size].to(device)
        seed_stream(seed, group, start, "craft")
        adversarial = craft(attack, target, xb, yb, eps, backend=backend, params=params,
                            companions=companions)
        out: dict[str, torch.Tensor] = {}
        for i, (e, key) in enumerate(zip(eps, keys, strict=True)):
            out[f"adv_{i}"] = adversarial[e].cpu()
            scores = score_batch(target, adversarial[e], yb, draws, selection_draws, seed, key,
                                 start, device)
            out.update({f"{name}_{i}": value for name, value in scores.items()})
        out["seconds"] = torch.tensor(time.perf_counter() - begin, dtype=torch.float64)
        return out

    return work


def clean_work(target: Target, x: torch.Tensor, y: torch.Tensor, *, key: str, seed: int,
               batch_size: int, draws: int, selection_draws: int, device: str) -> BatchWork:
    """The work of one batch of a clean cell: its scores and seconds."""
    def work(start: int) -> dict[str, torch.Tensor]:
        begin = time.perf_counter()
        xb = x[start : start + batch_size].to(device)
        out = score_batch(target, xb, y[start : start + batch_size], draws, selection_draws,
                          seed, key, start, device)
        out = {f"{name}_0": value for name, value in out.items()}
        out["seconds"] = torch.tensor(time.perf_counter() - begin, dtype=torch.float64)
        return out

    return work


def run_batches(store: RunStore, group: str, n: int, batch_size: int, work: BatchWork, *,
                world: World = SINGLE, desc: str = "", quiet: bool = True
                ) -> dict[int, dict[str, torch.Tensor]] | None:
    """Every batch of ``group`` (those already kept are not recomputed); rank 0 returns them
    all by start index, the other ranks None."""
    starts = list(range(0, n, batch_size))
    found = store.batches(group) if world.main else {}
    kept = world.broadcast(sorted(found))
    remaining = [s for s in starts if s not in kept]
    size = {s: min(batch_size, n - s) for s in starts}
    bar = tqdm(total=n, initial=sum(size[s] for s in kept), desc=desc, unit="ex", leave=False,
               disable=quiet or not world.main)
    for batch_round in round_robin(remaining, world):
        mine = batch_round[world.rank] if world.rank < len(batch_round) else None
        result = _work_or_report(work, mine, world)
        if world.main and mine is not None:
            store.keep_batch(group, mine, result)
            found[mine] = result
        if world.sharded:
            for start, tensors in _collect(world, mine, result):
                store.keep_batch(group, start, tensors)
                found[start] = tensors
        bar.update(sum(size[s] for s in batch_round))
    bar.close()
    return found if world.main else None


def _work_or_report(work: BatchWork, start: int | None, world: World
                    ) -> dict[str, torch.Tensor] | None:
    """This rank's batch of the round; under several ranks, every rank learns whether any
    failed (and all stop) before results are exchanged."""
    if not world.sharded:
        return None if start is None else work(start)
    error: BaseException | None = None
    result = None
    try:
        result = None if start is None else work(start)
    except Exception as exc:  # noqa: BLE001 - reported to every rank, then re-raised here
        error = exc
    statuses = _collective(world.all_gather, None if error is None else
                           f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    failed = [(rank, text) for rank, text in enumerate(statuses) if text]
    if failed:
        rank, text = failed[0]
        raise RankFailed(f"rank {rank} failed ({text}); every finished batch is kept: rerun the "
                         "same command, with any number of processes, to resume")
    return result


def _collect(world: World, start: int | None, result: dict[str, torch.Tensor] | None
             ) -> list[tuple[int, dict[str, torch.Tensor]]]:
    """On rank 0, the other ranks' batches of this round (empty elsewhere)."""
    payloads = _collective(world.gather, None if world.main else (start, result))
    if not world.main:
        return []
    return [(s, r) for s, r in (p for p in payloads[1:] if p is not None) if s is not None]


def _collective(fn: Callable[[Any], Any], value: Any) -> Any:
    try:
        return fn(value)
    except RuntimeError as exc:  # a peer that died closes its connections or times out
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RankFailed(f"another rank stopped ({first}); every finished batch is kept: "
                         "rerun the same command, with any number of processes, to "
                         "resume") from None
