"""`robbench run` end to end on a small subset, and one-line errors for bad values."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from robbench.cli import main
from robbench.records.store import SUMMARY_COLUMNS


def test_run_end_to_end_on_a_small_subset(tmp_path, capsys):
    assert main(["run", "--attack", "fgsm", "--n", "30", "--draws", "2", "--eps", "0.1,0.2",
                 "--quiet", "--out", str(tmp_path)]) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    summary = pd.read_csv(run_dir / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert len(summary) == 2 * (1 + 2)
    clean = summary[summary.attack == "none"]
    assert set(clean.eps) == {0} and set(clean.model) == {"convnet", "shortrun"}
    assert (summary.n == 30).all() and summary.accuracy.between(0, 1).all()
    assert (summary.ci_low <= summary.accuracy).all()
    assert (summary.accuracy <= summary.ci_high).all()
    shortrun = summary[summary.model == "shortrun"]
    assert (shortrun.draws == 2).all()
    assert (run_dir / "summary.md").read_text().startswith("| dataset")
    out = capsys.readouterr().out
    assert "convnet" in out and "shortrun" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--eps", "abc"], "eps 'abc'"),
        (["run", "--eps", "-0.1"], "positive"),
        (["run", "--attack", "nope"], "attack 'nope' is unknown; allowed: fgsm"),
        (["run", "--model", "resnet"], "model 'resnet' is unknown; allowed: convnet"),
        (["run", "--kappa", "1"], "'kappa' applies to none of pgd"),
        (["run", "--device", "tpu"], "device 'tpu' is unknown; allowed: auto, cpu, cuda"),
        (["run", "--resume", "no-such-run"], "no-such-run"),
    ],
)
def test_bad_values_give_one_line_errors(args, message, tmp_path, capsys):
    assert main([*args, "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not any(tmp_path.iterdir()), "a failed run must not leave files behind"


def test_argparse_errors_exit_non_zero_in_a_subprocess():
    result = subprocess.run([sys.executable, "-m", "robbench", "run", "--n", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--n: '0' must be >= 1" in result.stderr


def test_list_shows_checkpoints_and_attacks(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "digits-shortrun.safetensors" in out and "pgd-l2" in out


def test_a_reader_that_leaves_early_gets_no_traceback():
    """``robbench list | head -1``: the closed pipe ends the command quietly, exit 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "robbench", "list"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


def test_rows_record_the_backend_and_eot_that_actually_ran(tmp_path):
    import json

    assert main(["run", "--attack", "pgd", "--eot", "3", "--steps", "2", "--n", "8",
                 "--draws", "2", "--eps", "0.1", "--max-batch", "16", "--quiet",
                 "--out", str(tmp_path)]) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    params = json.loads((run_dir / "config.json").read_text())["attack_params"]["pgd"]
    assert params["max_batch"] == 16 and params["eot"] == 3
    rows = pd.read_csv(run_dir / "summary.csv").set_index(["model", "attack"])
    # EOT is meaningless for the deterministic ConvNet: one draw.
    assert rows.loc[("convnet", "pgd"), ["backend", "eot"]].tolist() == ["robbench", 1]
    assert rows.loc[("shortrun", "pgd"), ["backend", "eot"]].tolist() == ["robbench", 3]


def test_train_applies_every_given_setting(tmp_path, capsys):
    import json

    out = tmp_path / "m.safetensors"
    assert main(["train", "--model", "shortrun", "--objective", "joint", "--epochs", "1",
                 "--width", "4", "--latent", "4", "--langevin-steps", "2", "--sigma", "0.2",
                 "--labels", "50", "--quiet", "--out", str(out)]) == 0
    spec = json.loads(out.with_suffix(".json").read_text())["spec"]
    assert spec["model"]["width"] == 4 and spec["model"]["langevin_steps"] == 2
    assert spec["model"]["sigma"] == 0.2 and spec["train"]["labels"] == 50
    assert spec["train"]["objective"] == "joint" and spec["train"]["epochs"] == 1
    assert "clean test accuracy" in capsys.readouterr().out


def test_out_of_gpu_memory_is_one_line_naming_the_remedies(monkeypatch, capsys, tmp_path):
    import torch

    from robbench.cli import run_commands

    def exhausted(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB\nmore")

    monkeypatch.setattr(run_commands, "run_named", exhausted)
    assert main(["run", "--attack", "eot-pgd", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "Tried to allocate 9.00 GiB" in err and "--max-batch" in err and "--batch-size" in err
