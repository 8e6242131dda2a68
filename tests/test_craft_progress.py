"""A run stopped in the middle of crafting resumes at the next batch and ends with exactly the
cells an uninterrupted run writes, the stochastic model's included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robbench import run_grid
from robbench.run_grid import RunConfig, execute, load_outcomes, read_cells

CONFIG = RunConfig(models=["convnet", "shortrun"], attacks=["pgd"], eps=[0.1, 0.2], n=24,
                   draws=2, params={"steps": 3})
CELLS = [f"{m}__{a}" for m in ("convnet", "shortrun") for a in ("none__0", "pgd__0.1", "pgd__0.2")]


def _cells(run_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    return {key: load_outcomes(run_dir, key) for key in CELLS}


def _same_cells(a: Path, b: Path) -> None:
    for key, outcomes in _cells(a).items():
        other = load_outcomes(b, key)
        for name, values in outcomes.items():
            assert np.array_equal(values, other[name]), f"{key}: {name} differs"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir, _ = execute(CONFIG, run_dir=tmp_path_factory.mktemp("whole") / "run",
                         batch_size=8, quiet=True)
    return run_dir


def _on_shortrun(target: str, args: tuple) -> bool:
    if target == "craft":  # craft(attack, model, ...)
        return getattr(args[1], "stochastic", False)
    return args[1].startswith("shortrun__pgd")  # write_cell(cells_dir, key, ...)


def _stop_at(monkeypatch: pytest.MonkeyPatch, target: str, call: int) -> list[str]:
    """Raise KeyboardInterrupt (a user's Ctrl-C) at the ``call``-th call of run_grid.``target``
    on the Short Run model's attack; returns a log of those calls."""
    real = getattr(run_grid, target)
    calls: list[str] = []

    def stopping(*args, **kwargs):
        if _on_shortrun(target, args):
            calls.append("shortrun")
            if len(calls) == call:
                raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(run_grid, target, stopping)
    return calls


def test_a_run_stopped_mid_attack_resumes_at_the_next_batch(
        tmp_path: Path, uninterrupted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        _stop_at(m, "craft", 3)
        with pytest.raises(KeyboardInterrupt):
            execute(CONFIG, run_dir=run_dir, batch_size=8, quiet=True)
    kept = sorted((run_dir / "partial" / "shortrun__pgd__0.1_0.2").glob("batch-*"))
    assert [p.name for p in kept] == ["batch-0000000.safetensors", "batch-0000008.safetensors"]
    assert {r["model"] for r in read_cells(run_dir) if r["attack"] == "pgd"} == {"convnet"}
    listed = pd.read_csv(run_dir / "summary.csv")  # every finished cell of the stopped run
    assert sorted(zip(listed.model, listed.attack, strict=True)) == [
        ("convnet", "none"), ("convnet", "pgd"), ("convnet", "pgd"), ("shortrun", "none")]

    with monkeypatch.context() as m:
        calls = _stop_at(m, "craft", 0)
        execute(CONFIG, run_dir=run_dir, batch_size=8, quiet=True)
    assert calls == ["shortrun"]  # only the third batch was crafted again
    _same_cells(run_dir, uninterrupted)
    assert not (run_dir / "partial").exists()
    crafted = {r["model"]: r["seconds"] for r in read_cells(run_dir) if r["eps"] == 0.1}
    assert crafted["shortrun"] > 0


def test_a_run_stopped_while_writing_its_cells_reuses_the_crafted_batches(
        tmp_path: Path, uninterrupted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        _stop_at(m, "write_cell", 2)  # after shortrun's eps 0.1 cell
        with pytest.raises(KeyboardInterrupt):
            execute(CONFIG, run_dir=run_dir, batch_size=8, quiet=True)
    assert (run_dir / "cells" / "shortrun__pgd__0.1.json").is_file()
    assert not (run_dir / "cells" / "shortrun__pgd__0.2.json").exists()

    with monkeypatch.context() as m:
        calls = _stop_at(m, "craft", 0)
        execute(CONFIG, run_dir=run_dir, batch_size=8, quiet=True)
    assert calls == []  # all three batches were kept: nothing crafted again
    _same_cells(run_dir, uninterrupted)
    assert not (run_dir / "partial").exists()


def test_resuming_with_another_batch_size_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        _stop_at(m, "craft", 2)
        with pytest.raises(KeyboardInterrupt):
            execute(CONFIG, run_dir=run_dir, batch_size=8, quiet=True)
    before = sorted(p.name for p in (run_dir / "partial").rglob("*"))
    with pytest.raises(ValueError, match="batches of 8 of 24 images; rerun with --batch-size 8"):
        execute(CONFIG, run_dir=run_dir, batch_size=12, quiet=True)
    assert sorted(p.name for p in (run_dir / "partial").rglob("*")) == before
