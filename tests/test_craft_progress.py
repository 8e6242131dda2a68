"""A run stopped in the middle of crafting resumes at the next batch and ends with exactly the
cells an uninterrupted run writes, the stochastic model's included (every batch has its own
random stream, so nothing depends on what ran before it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_in

from robbench.records.store import DirectoryStore
from robbench.runs import batches
from robbench.runs.config import RunConfig

CONFIG = RunConfig(models=["convnet", "shortrun"], attacks=["pgd"], eps=[0.1, 0.2], n=24,
                   draws=2, selection_draws=2, params={"steps": 3})
CELLS = [f"{m}__{a}" for m in ("convnet", "shortrun") for a in ("none__0", "pgd__0.1", "pgd__0.2")]


def _same_cells(a: Path, b: Path) -> None:
    for key in CELLS:
        mine, theirs = DirectoryStore(a).outcomes(key), DirectoryStore(b).outcomes(key)
        assert sorted(mine) == sorted(theirs), key
        for name, values in mine.items():
            assert np.array_equal(values, theirs[name]), f"{key}: {name} differs"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir, _ = run_in(CONFIG, tmp_path_factory.mktemp("whole") / "run", batch_size=8)
    return run_dir


def _stop_at(monkeypatch: pytest.MonkeyPatch, target: str, call: int) -> list[str]:
    """Raise KeyboardInterrupt (a user's Ctrl-C) at the ``call``-th crafting of a Short Run
    batch (``craft``) or the ``call``-th Short Run pgd cell written (``write_cell``); returns
    a log of those calls."""
    calls: list[str] = []
    if target == "craft":
        real = batches.craft

        def stopping(attack, aimed, *args, **kwargs):
            if aimed.stochastic:
                calls.append("shortrun")
                if len(calls) == call:
                    raise KeyboardInterrupt
            return real(attack, aimed, *args, **kwargs)

        monkeypatch.setattr(batches, "craft", stopping)
    else:
        real_write = DirectoryStore.write_cell

        def stopping_write(self, key, *args, **kwargs):
            if key.startswith("shortrun__pgd"):
                calls.append("shortrun")
                if len(calls) == call:
                    raise KeyboardInterrupt
            return real_write(self, key, *args, **kwargs)

        monkeypatch.setattr(DirectoryStore, "write_cell", stopping_write)
    return calls


def test_a_run_stopped_mid_attack_resumes_at_the_next_batch(
        tmp_path: Path, uninterrupted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        _stop_at(m, "craft", 3)
        with pytest.raises(KeyboardInterrupt):
            run_in(CONFIG, run_dir, batch_size=8)
    kept = sorted((run_dir / "partial" / "shortrun__pgd").glob("batch-*"))
    assert [p.name for p in kept] == ["batch-0000000.safetensors", "batch-0000008.safetensors"]
    records = DirectoryStore(run_dir).records()
    assert {r["model"] for r in records if r["attack"] == "pgd"} == {"convnet"}
    listed = pd.read_csv(run_dir / "summary.csv")  # every finished cell of the stopped run
    assert sorted(zip(listed.model, listed.attack, strict=True)) == [
        ("convnet", "none"), ("convnet", "pgd"), ("convnet", "pgd"), ("shortrun", "none")]

    with monkeypatch.context() as m:
        calls = _stop_at(m, "craft", 0)
        run_in(CONFIG, run_dir, batch_size=8)
    assert calls == ["shortrun"]  # only the third batch was crafted again
    _same_cells(run_dir, uninterrupted)
    assert not (run_dir / "partial").exists()
    crafted = {r["model"]: r["seconds"] for r in DirectoryStore(run_dir).records()
               if r["eps"] == 0.1}
    assert crafted["shortrun"] > 0


def test_a_run_stopped_while_writing_its_cells_reuses_the_crafted_batches(
        tmp_path: Path, uninterrupted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        _stop_at(m, "write_cell", 2)  # after shortrun's eps 0.1 cell
        with pytest.raises(KeyboardInterrupt):
            run_in(CONFIG, run_dir, batch_size=8)
    assert (run_dir / "cells" / "shortrun__pgd__0.1.json").is_file()
    assert not (run_dir / "cells" / "shortrun__pgd__0.2.json").exists()

    with monkeypatch.context() as m:
        calls = _stop_at(m, "craft", 0)
        run_in(CONFIG, run_dir, batch_size=8)
    assert calls == []  # all three batches were kept: nothing crafted again
    _same_cells(run_dir, uninterrupted)
    assert not (run_dir / "partial").exists()


def test_resuming_with_another_batch_size_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        _stop_at(m, "craft", 2)
        with pytest.raises(KeyboardInterrupt):
            run_in(CONFIG, run_dir, batch_size=8)
    before = sorted(p.name for p in (run_dir / "partial").rglob("*"))
    with pytest.raises(ValueError, match="crafts batches of 8 images .*--batch-size 8"):
        run_in(CONFIG, run_dir, batch_size=12)
    assert sorted(p.name for p in (run_dir / "partial").rglob("*")) == before


def test_outcomes_do_not_depend_on_the_order_batches_ran_in(
        tmp_path: Path, uninterrupted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each batch's draws come from (seed, cell, batch) alone: with the batches of every cell
    computed last to first, the run writes the uninterrupted run's cells bit for bit."""
    order: list[list[int]] = []

    def backwards(items, world):
        order.append(list(reversed(items)))
        return [[s] for s in reversed(items)]

    monkeypatch.setattr(batches, "round_robin", backwards)
    run_dir, _ = run_in(CONFIG, tmp_path / "run", batch_size=8)
    assert [0, 8, 16][::-1] in order
    _same_cells(run_dir, uninterrupted)
    assert DirectoryStore(run_dir).read_meta()["seeding"] == "per-batch"
