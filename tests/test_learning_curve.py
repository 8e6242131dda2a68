"""`robbench curve`: the learning curve of a training, from its card or, while it is paused,
from its resume state; the same passes either way."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_resumable_training import SHORTRUN

from robbench.cli import main
from robbench.models.training_state import resume_dir
from robbench.report.learning_curve import curve_summary, learning_curves


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny Short Run classifier trained with a monitor: paused after 3 of its 4 epochs
    (its resume state copied aside), then finished."""
    root = tmp_path_factory.mktemp("curve")
    out = root / "m.safetensors"
    assert main([*SHORTRUN, "--out", str(out), "--monitor", "40", "--max-epochs", "3"]) == 0
    paused = json.loads((resume_dir(out) / "state.json").read_text())["progress"]["history"]
    assert main([*SHORTRUN, "--out", str(out), "--monitor", "40", "--resume"]) == 0
    return out, paused


def test_the_curve_of_a_finished_training_has_one_row_per_labelled_pass(trained, tmp_path):
    out, _ = trained
    assert main(["curve", str(out.with_suffix(".json")), "--out", str(tmp_path),
                 "--target", "0.9"]) == 0
    frame = pd.read_csv(tmp_path / "learning_curve.csv")
    history = json.loads(out.with_suffix(".json").read_text())["epoch_history"]
    labelled = [h for h in history if h["stage"] != "generative"]
    assert list(frame.labelled_epoch) == [1, 2, 3]
    assert list(frame.stage) == ["discriminative", "bptt", "bptt"]
    assert list(frame.monitor_accuracy) == [h["monitor_accuracy"] for h in labelled]
    assert frame.finished.all()
    assert (tmp_path / "learning_curve.png").stat().st_size > 0
    text = (tmp_path / "learning_curve.md").read_text()
    assert text.startswith("`robbench curve") and "Unfinished" not in text


def test_a_paused_training_is_read_from_its_resume_state(trained, tmp_path):
    out, paused = trained
    state = tmp_path / "p.resume"
    state.mkdir()
    (state / "state.json").write_text(json.dumps({"progress": {"spec": {}, "history": paused}}))
    assert main(["curve", str(state), "--out", str(tmp_path / "c")]) == 0
    frame = pd.read_csv(tmp_path / "c" / "learning_curve.csv")
    assert list(frame.labelled_epoch) == [1, 2] and not frame.finished.any()
    assert set(frame.model) == {"p"}
    assert "Unfinished, read from the resume state: p." in (
        tmp_path / "c" / "learning_curve.md").read_text()


def test_a_path_that_is_no_training_is_one_line(tmp_path, capsys):
    assert main(["curve", str(tmp_path / "nothing.json"), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nothing.json is neither a model card" in err and "\n" not in err
    assert not (tmp_path / "c").exists()


def test_the_summary_states_the_best_epoch_and_the_second_half_of_the_curve():
    """Held-out 0.5, 0.8, 0.9, 0.88, 0.9, 0.89 against training 0.5 ... 0.95: best 90.0% at
    labelled epoch 3, and over epochs 4-6 held-out ranged from 88.0% to 90.0% while training
    accuracy rose from 0.9 to 0.95 (+5.0 points)."""
    train = [0.5, 0.7, 0.8, 0.9, 0.93, 0.95]
    held = [0.5, 0.8, 0.9, 0.88, 0.9, 0.89]
    history = [{"stage": "bptt", "epoch": k + 1, "loss": 1.0, "train_accuracy": train[k],
                "monitor_accuracy": held[k], "seconds": 600.0} for k in range(6)]
    frame = learning_curves({"m": (history, True)})
    text = curve_summary(frame)
    assert "6 labelled passes, 1.0 hours" in text
    assert "best 90.0% at labelled epoch 3, last 89.0%" in text
    assert "Over labelled epochs 4-6 it ranged from 88.0% to 90.0%" in text
    assert "changed by +5.0 points" in text
