"""A run killed with SIGKILL after its first finished cell resumes without losing or redoing one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import run_in

from robbench.records.store import ADV_KEEP, DirectoryStore
from robbench.runs.config import RunConfig, resolved_params

ARGS = ["run", "--attack", "fgsm", "--eps", "0.1,0.2", "--n", "24", "--draws", "2",
        "--model", "convnet", "--model", "shortrun", "--device", "cpu", "--quiet",
        "--batch-size", "8"]
EXPECTED = {f"{m}__{a}__{e}" for m in ("convnet", "shortrun")
            for a, e in (("none", "0"), ("fgsm", "0.1"), ("fgsm", "0.2"))}


def _robbench(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "robbench", *ARGS, "--out", str(out), *extra]


def _snapshot(cells: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(cells.iterdir()) if not p.name.startswith(".")}


def test_killed_run_resumes_every_cell_once(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_robbench(out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    cells = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(out.glob("*/cells/*.json"))
        if found:
            cells = found[0].parent
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert cells is not None

    finished = {p.stem for p in cells.glob("*.json")}
    assert finished and finished < EXPECTED, f"killed midway, yet cells were {finished}"
    before = _snapshot(cells)
    # a half-written file, as a kill during a write leaves it: it must never be read
    (cells / ".shortrun__fgsm__0.2.json.deadbeef.tmp").write_text('{"accuracy": 0.5, "half')
    (cells / "shortrun__fgsm__0.2.npz").write_bytes(b"truncated npz without its json")

    rerun = subprocess.run(_robbench(out), env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr

    records = DirectoryStore(cells.parent).records()
    keys = [f"{r['model']}__{r['attack']}__{r['eps']:g}" for r in records]
    assert sorted(keys) == sorted(EXPECTED)  # every cell, each exactly once
    after = _snapshot(cells)
    for name, (mtime, data) in before.items():
        if name.endswith(".json"):  # finished cells are not recomputed
            assert after[name] == (mtime, data), f"{name} was rewritten"
    out_npz = DirectoryStore(cells.parent).outcomes("shortrun__fgsm__0.2")  # recomputed
    assert out_npz["pred"].shape == (2, 24)
    summary = (cells.parent / "summary.csv").read_text().strip().splitlines()
    assert len(summary) == 1 + len(EXPECTED)


def test_resume_by_run_id_finishes_missing_cells(tmp_path: Path) -> None:
    from robbench.cli import main

    config = RunConfig(models=["convnet"], attacks=["fgsm"], eps=[0.1, 0.2], n=16, draws=1)
    out = tmp_path / "runs"
    assert main(["run", "--attack", "fgsm", "--model", "convnet", "--eps", "0.1,0.2", "--n",
                 "16", "--draws", "1", "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    run_dir = out / config.run_id()
    assert run_dir.is_dir()
    (run_dir / "cells" / "convnet__fgsm__0.2.json").unlink()
    kept = (run_dir / "cells" / "convnet__fgsm__0.1.json").read_bytes()
    assert main(["run", "--resume", config.run_id(), "--out", str(out), "--quiet"]) == 0
    assert (run_dir / "cells" / "convnet__fgsm__0.1.json").read_bytes() == kept
    records = DirectoryStore(run_dir).records()
    assert {r["eps"] for r in records if r["attack"] == "fgsm"} == {0.1, 0.2}


def test_attacked_cells_trace_to_clean_predictions(tmp_path: Path) -> None:
    config = RunConfig(models=["convnet", "shortrun"], attacks=["fgsm"], eps=[0.1], n=20,
                       draws=3, selection_draws=2)
    run_dir, _ = run_in(config, tmp_path / "run")
    meta = json.loads((run_dir / "config.json").read_text())
    assert meta["robbench_version"] and meta["config"]["seed"] == 0
    assert all(len(c["sha256"]) == 64 for c in meta["checkpoints"].values())
    store = DirectoryStore(run_dir)
    for model, draws in (("convnet", 1), ("shortrun", 3)):
        clean = store.outcomes(f"{model}__none__0")
        adv = store.outcomes(f"{model}__fgsm__0.1")
        assert np.array_equal(adv["clean_pred"], clean["pred"])
        assert adv["pred"].shape == adv["clean_pred"].shape == (draws, 20)
        # a random model's selection passes are kept apart from the reported ones
        assert ("sel_pred" in adv) == (model == "shortrun")
        if model == "shortrun":
            assert adv["sel_pred"].shape == (2, 20)
        assert adv["adv_x"].dtype == np.float16 and len(adv["adv_x"]) == min(ADV_KEEP, 20)
        assert np.all(adv["norm"] <= 0.1 + 1e-6)


def test_quiet_silences_progress(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from robbench.cli import main

    args = ["run", "--attack", "fgsm", "--eps", "0.1", "--n", "8", "--model", "convnet",
            "--device", "cpu", "--out", str(tmp_path)]
    assert main([*args, "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    args[4] = "0.2"  # a new cell, so there is something to show
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "convnet fgsm eps=0.2" in err and "ex/s" in err  # a bar with its rate


def test_resumed_run_keeps_every_device_that_computed_its_cells(tmp_path: Path) -> None:
    config = RunConfig(dataset="digits", models=["convnet"], attacks=["fgsm"], eps=[0.1], n=8,
                       draws=1)
    run_dir = tmp_path / "run"
    run_in(config, run_dir)
    meta_path = run_dir / "config.json"
    assert json.loads(meta_path.read_text())["devices"] == ["cpu"]
    # As if the cells had been computed on a GPU and the directory copied here.
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "device": "cuda", "devices": ["cuda"]}))
    run_in(config, run_dir)
    assert json.loads(meta_path.read_text())["devices"] == ["cuda"]  # nothing computed here
    (run_dir / "cells" / "convnet__fgsm__0.1.json").unlink()
    run_in(config, run_dir)
    assert json.loads(meta_path.read_text())["devices"] == ["cpu", "cuda"]


def test_a_run_is_not_resumed_under_changed_attack_settings(tmp_path: Path) -> None:
    config = RunConfig(dataset="digits", models=["convnet"], attacks=["pgd"], eps=[0.1], n=8,
                       draws=1, params={"steps": 2})
    run_dir = tmp_path / "run"
    run_in(config, run_dir)
    meta_path = run_dir / "config.json"
    meta = json.loads(meta_path.read_text())
    assert meta["attack_params"]["pgd"]["steps"] == 2
    # As if the run had been computed while pgd's defaults were different.
    changed = {**meta["attack_params"]["pgd"], "step_size": 0.5}
    meta_path.write_text(json.dumps({**meta, "attack_params": {"pgd": changed}}))
    with pytest.raises(ValueError, match=r"ran pgd with .*'step_size': 0.5.*remove it"):
        run_in(config, run_dir)


def test_a_run_of_the_earlier_seeding_is_read_but_never_resumed(tmp_path: Path) -> None:
    """Runs computed before per-batch seeding keep their records; finishing one under the new
    scheme would mix two random streams in one run, so it is refused."""
    config = RunConfig(dataset="digits", models=["convnet"], attacks=["fgsm"], eps=[0.1, 0.2],
                       n=8, draws=1)
    run_dir = tmp_path / "run"
    run_in(config, run_dir)
    meta_path = run_dir / "config.json"
    meta = json.loads(meta_path.read_text())
    del meta["seeding"]
    meta_path.write_text(json.dumps(meta))
    run_in(config, run_dir)  # complete: nothing to compute, read as it is
    (run_dir / "cells" / "convnet__fgsm__0.2.json").unlink()
    with pytest.raises(ValueError, match="earlier sequential seeding.*cannot be resumed"):
        run_in(config, run_dir)


def test_every_committed_run_of_the_current_scheme_matches_the_attack_settings() -> None:
    """A default changed since a committed run was computed leaves it stale: regenerate it.
    (Runs of the earlier seeding scheme are kept as computed, labelled by their records, and so
    is a run whose record says it is superseded and names the command that recomputes it.)"""
    runs = [p.parent for p in (Path(__file__).resolve().parents[1] / "results").rglob(
        "config.json") if (p.parent / "cells").is_dir()]
    current = [r for r in runs if DirectoryStore(r).read_meta().get("seeding") == "per-batch"]
    superseded = [r for r in current if DirectoryStore(r).read_meta().get("superseded")]
    for run_dir in superseded:  # kept as computed, labelled with the command that replaces it
        assert "robbench " in DirectoryStore(run_dir).read_meta()["superseded"], run_dir
    current = [r for r in current if r not in superseded]
    assert len(current) >= 10
    for run_dir in current:
        meta = DirectoryStore(run_dir).read_meta()
        assert meta["attack_params"] == resolved_params(RunConfig.from_meta(meta)), run_dir


def test_default_eps_spelled_out_resume_the_same_run(tmp_path: Path) -> None:
    implicit = RunConfig(models=["convnet"], attacks=["fgsm"], n=8, draws=1)
    run_dir, _ = run_in(implicit, tmp_path / "run")
    before = _snapshot(run_dir / "cells")
    explicit = RunConfig(models=["convnet"], attacks=["fgsm"], eps=[0.1, 0.2, 0.3], n=8, draws=1)
    run_in(explicit, run_dir)
    assert _snapshot(run_dir / "cells") == before  # nothing recomputed
    with pytest.raises(ValueError, match="holds a different run"):
        run_in(RunConfig(models=["convnet"], attacks=["fgsm"], eps=[0.1, 0.2], n=8, draws=1),
               run_dir)
    # a larger n is another run, and the error says which setting differs
    with pytest.raises(ValueError, match=r"\(n 8 there, 12 asked\)"):
        run_in(RunConfig(models=["convnet"], attacks=["fgsm"], n=12, draws=1), run_dir)
    assert _snapshot(run_dir / "cells") == before  # nothing written by the refused calls
