"""Sharded runs: two gloo ranks give one process's outcomes bit for bit; a killed rank loses
at most its batch and any world size resumes; plain python creates no process group."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch.distributed as dist
from conftest import run_in

from robbench.cli import build_parser
from robbench.cli.run_commands import run_config
from robbench.perf.scaling import DEFAULT_RUN
from robbench.records.store import DirectoryStore
from robbench.runs.batches import default_batch_size
from robbench.runs.config import RunConfig

# A deterministic and a random model, a plain and an EOT attack, four batches of 6.
CONFIG = RunConfig(models=["convnet", "shortrun"], attacks=["pgd", "eot-pgd"], eps=[0.1],
                   n=24, draws=3, selection_draws=2, params={"steps": 2, "eot": 2})
BATCH = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(rank: int, world: int, port: int, run_dir: str, die_after: int | None,
              report: str) -> None:
    """One torchrun-like rank: the environment torchrun sets, then the run by name."""
    import torch

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "ROBBENCH_DIST_TIMEOUT": "60"})
    torch.set_num_threads(1)
    from robbench.runs import batches
    from robbench.runs.named import run_named

    if die_after is not None and rank == 1:
        real, done = batches.craft, []

        def dying(*args, **kwargs):
            if len(done) == die_after:
                os._exit(17)  # killed mid-run: no cleanup, no message
            done.append(1)
            return real(*args, **kwargs)

        batches.craft = dying
    try:
        run_named(CONFIG, run_dir, batch_size=BATCH, quiet=True)
        outcome = "ok"
    except Exception as exc:  # noqa: BLE001 - reported to the test
        outcome = f"{type(exc).__name__}: {exc}"
    Path(report).with_suffix(f".{rank}").write_text(outcome)


def _ranks(run_dir: Path, die_after: int | None = None) -> dict[int, tuple[int, str]]:
    ctx = multiprocessing.get_context("spawn")
    port, report = _free_port(), str(run_dir.parent / "report")
    procs = [ctx.Process(target=rank_main, args=(r, 2, port, str(run_dir), die_after, report))
             for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    out = {}
    for r, p in enumerate(procs):
        if p.is_alive():
            p.kill()
        path = Path(report).with_suffix(f".{r}")
        out[r] = (p.exitcode, path.read_text() if path.is_file() else "")
    return out


def _cells(run_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    store = DirectoryStore(run_dir)
    return {key: store.outcomes(key) for key in sorted(store.done())}


def _same(a: Path, b: Path) -> None:
    mine, theirs = _cells(a), _cells(b)
    assert sorted(mine) == sorted(theirs) and len(mine) == 6
    for key, outcomes in mine.items():
        assert sorted(outcomes) == sorted(theirs[key]), key
        for name, values in outcomes.items():
            assert np.array_equal(values, theirs[key][name]), f"{key}: {name}"


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir, _ = run_in(CONFIG, tmp_path_factory.mktemp("one") / "run", batch_size=BATCH)
    return run_dir


def test_two_gloo_ranks_give_one_process_outcomes_bit_for_bit(one_process, tmp_path):
    run_dir = tmp_path / "run"
    ranks = _ranks(run_dir)
    assert ranks == {0: (0, "ok"), 1: (0, "ok")}
    _same(run_dir, one_process)
    one, two = (pd.read_csv(d / "summary.csv").drop(columns="seconds")
                for d in (one_process, run_dir))
    pd.testing.assert_frame_equal(one, two)  # every column but the time taken
    assert json.loads((run_dir / "config.json").read_text())["seeding"] == "per-batch"


def test_a_killed_rank_loses_its_batch_and_one_process_resumes(one_process, tmp_path):
    run_dir = tmp_path / "run"
    ranks = _ranks(run_dir, die_after=1)
    assert ranks[1][0] == 17  # rank 1 died after its first batch
    assert ranks[0][1].startswith("RankFailed: ") and "rerun the same command" in ranks[0][1]
    kept = list((run_dir / "partial").rglob("batch-*.safetensors")) + list(
        (run_dir / "cells").glob("*.json"))
    assert kept  # the batches finished before the kill are on disk
    run_in(CONFIG, run_dir, batch_size=BATCH)  # world size 1 resumes
    _same(run_dir, one_process)
    assert not (run_dir / "partial").exists()


def test_plain_python_creates_no_process_group(tmp_path):
    for variable in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        assert variable not in os.environ
    run_in(RunConfig(models=["convnet"], attacks=["fgsm"], eps=[0.1], n=6, draws=1),
           tmp_path / "run")
    assert not dist.is_initialized()


def test_the_scaling_benchmark_times_the_run_a_user_types_and_the_default_shards_it():
    args = build_parser().parse_args(["run", "--attack", "pgd", "--n", "400"])
    assert run_config(args) == DEFAULT_RUN
    batch = default_batch_size(DEFAULT_RUN.n)
    assert len(range(0, DEFAULT_RUN.n, batch)) == 8  # a batch for each of 8 ranks
