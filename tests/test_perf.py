"""The performance benchmark runs end to end on tiny sizes and its accuracy guard holds."""

from __future__ import annotations

import json

import torch

from robbench.perf.chain import PerfSettings, perf_markdown, run_perf

TINY = PerfSettings(dataset="digits", attack_examples=8, attack_batch=8, eot=2, steps=1,
                    train_examples=64, train_batch=32, inference_examples=64,
                    scaling_examples=4, guard_examples=40, guard_steps=3)


def test_run_perf_writes_the_side_by_side_table_and_passes_its_guard(tmp_path):
    result = run_perf(TINY, torch.device("cpu"), tmp_path)
    name = result["device"]
    saved = json.loads((tmp_path / f"{name}.json").read_text())
    assert [w["unit"] for w in saved["workloads"]] == ["s", "s", "images/s"]
    assert all(w["reference"] > 0 and w["fast"] > 0 for w in saved["workloads"])
    assert {(r["axis"], r["value"]) for r in saved["scaling"]} >= {("K", 80), ("EOT", 32)}
    guard = saved["accuracy_guard"]
    assert guard["examples"] == 40 and guard["passed"]
    # Same seeds, same chain up to rounding: the two attacks craft the same images.
    assert guard["max_abs_difference"] < 1e-3
    assert "Accuracy guard (PASS)" in (tmp_path / f"{name}.md").read_text()
    assert (tmp_path / f"{name}-scaling.png").stat().st_size > 0
    assert perf_markdown(saved) == (tmp_path / f"{name}.md").read_text()
