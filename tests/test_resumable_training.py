"""Training in pieces: a stopped training resumes from its last finished epoch and ends with
the weights of one that never stopped, byte for byte (one thread, same torch build)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from conftest import tiny_config

import robbench.models.training as training
from robbench.cli import main
from robbench.models.build import build_model
from robbench.models.config import ModelSpec, TrainConfig
from robbench.models.training_loop import PieceLimit, train_resumable
from robbench.models.training_state import (
    StateStore,
    TrainingProgress,
    TrainingStateError,
    capture_rng,
    decode,
    encode,
    resume_dir,
)

# A tiny Short Run classifier: 1 + 1 + 2 epochs of the three stages on 100 labelled and 200
# generative images, the learning rate annealed from half-way (so the scheduler's state counts).
TINY = ["--dataset", "digits", "--width", "4", "--latent", "4", "--langevin-steps", "3",
        "--labels", "100", "--unlabelled", "200", "--batch-size", "32", "--anneal-from", "0.5",
        "--quiet"]
SHORTRUN = ["train", "--model", "shortrun", "--generative-epochs", "1",
            "--discriminative-epochs", "1", "--bptt-epochs", "2", *TINY]
CONVNET = ["train", "--model", "convnet", "--epochs", "4", *TINY]


def _train(argv: list[str], out, *extra: str) -> int:
    return main([*argv, "--out", str(out), *extra])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Each recipe trained in one piece: its checkpoint's bytes."""
    out = tmp_path_factory.mktemp("whole")
    weights = {}
    for name, argv in (("shortrun", SHORTRUN), ("convnet", CONVNET)):
        assert _train(argv, out / f"{name}.safetensors") == 0
        weights[name] = (out / f"{name}.safetensors").read_bytes()
    return weights


@pytest.mark.parametrize(("name", "argv", "first"), [
    ("shortrun", SHORTRUN, 2),  # stops between stages 2 and 3
    ("shortrun", SHORTRUN, 3),  # stops inside BPTT: optimiser and scheduler state carry over
    ("convnet", CONVNET, 2),
])
def test_two_pieces_give_the_weights_of_one_run(tmp_path, capsys, uninterrupted, name, argv,
                                                first):
    out = tmp_path / "m.safetensors"
    assert _train(argv, out, "--max-epochs", str(first)) == 0
    assert "paused at" in capsys.readouterr().out
    assert not out.exists() and (resume_dir(out) / "state.json").is_file()
    torch.manual_seed(1234)  # whatever the process drew before does not matter
    np.random.seed(5)
    random.seed(5)
    assert _train(argv, out, "--resume") == 0
    assert out.read_bytes() == uninterrupted[name]
    assert not resume_dir(out).exists()  # the card replaces the finished state
    card = json.loads(out.with_suffix(".json").read_text())
    assert [p["epochs"] for p in card["pieces"]] == [first, 4 - first]
    assert card["pieces"][0]["command"].endswith(f"--max-epochs {first}")
    assert card["pieces"][1]["command"].endswith("--resume")
    assert card["train_seconds"] == pytest.approx(sum(p["seconds"] for p in card["pieces"]),
                                                  abs=0.02)  # each rounded to 0.01 s
    assert len(card["epoch_history"]) == 4


def test_the_monitor_records_a_learning_curve_and_leaves_the_weights_alone(tmp_path,
                                                                          uninterrupted):
    out = tmp_path / "m.safetensors"
    assert _train(SHORTRUN, out, "--monitor", "40") == 0
    assert out.read_bytes() == uninterrupted["shortrun"]  # its chains draw from a forked state
    history = json.loads(out.with_suffix(".json").read_text())["epoch_history"]
    curve = {h["stage"]: h.get("monitor_accuracy") for h in history}
    assert curve["generative"] is None  # no labels, no head to score
    assert all(0 <= curve[s] <= 1 for s in curve if s != "generative")
    assert len(curve) == 3


def test_a_training_killed_mid_epoch_resumes_from_the_last_finished_one(
        tmp_path, capsys, monkeypatch, uninterrupted):
    out = tmp_path / "m.safetensors"
    calls = []
    real = training.joint_loss

    def dies_in_the_second_bptt_epoch(*args):
        calls.append(1)
        if len(calls) == 6:  # 4 steps per epoch of 100 images: the second epoch's 2nd step
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(training, "joint_loss", dies_in_the_second_bptt_epoch)
    assert _train(SHORTRUN, out) == 130
    assert "rerun with --resume" in capsys.readouterr().err
    progress, _ = StateStore(resume_dir(out)).load()
    assert progress.position() == "stage 3 after 1 epoch"
    monkeypatch.setattr(training, "joint_loss", real)
    assert _train(SHORTRUN, out, "--resume") == 0
    assert out.read_bytes() == uninterrupted["shortrun"]


def test_a_resume_with_other_settings_is_refused_naming_the_setting(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    assert _train(SHORTRUN, out, "--max-epochs", "1") == 0
    state = (resume_dir(out) / "state.json").read_bytes()
    capsys.readouterr()
    argv = [*SHORTRUN[:SHORTRUN.index("--bptt-epochs") + 1], "3",
            *SHORTRUN[SHORTRUN.index("--bptt-epochs") + 2:]]
    assert _train(argv, out, "--resume") == 2
    err = capsys.readouterr().err
    assert "started with train.bptt_epochs = 2 (this command: 3)" in err
    assert len(err.strip().splitlines()) == 1
    assert (resume_dir(out) / "state.json").read_bytes() == state and not out.exists()
    # starting over by accident is refused too: the unfinished state is kept
    assert _train(SHORTRUN, out) == 2
    assert "holds an unfinished training (at stage 2 after 0 epochs)" in capsys.readouterr().err
    assert (resume_dir(out) / "state.json").read_bytes() == state


def test_max_minutes_pauses_at_an_epoch_boundary_and_a_finished_one_is_left_alone(
        tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    # a budget far below one epoch: each piece still makes one epoch of progress
    assert _train(CONVNET, out, "--max-minutes", "1e-6") == 0
    assert "paused at stage 1 after 1 epoch " in capsys.readouterr().out
    for _ in range(3):
        assert _train(CONVNET, out, "--resume", "--max-minutes", "1e-6") == 0
    assert "clean test accuracy" in capsys.readouterr().out
    weights = out.read_bytes()
    assert _train(CONVNET, out, "--resume") == 0
    assert "already trained" in capsys.readouterr().out
    assert out.read_bytes() == weights
    pieces = json.loads(out.with_suffix(".json").read_text())["pieces"]
    assert [p["epochs"] for p in pieces] == [1, 1, 1, 1]


def test_a_stage_of_no_epochs_is_skipped_in_one_piece_and_in_several(digits, tmp_path):
    spec = ModelSpec("digits", tiny_config("shortrun"),
                     TrainConfig(generative_epochs=0, discriminative_epochs=1, bptt_epochs=1,
                                 batch_size=32, labels=50))
    x, y = digits.x_train, digits.y_train
    torch.manual_seed(0)  # the initial weights (train_and_save seeds them the same way)
    whole = build_model(spec.model)
    assert train_resumable(whole, spec, x, y, quiet=True).finished
    store, pieces = StateStore(tmp_path / "s.resume"), 0
    progress = TrainingProgress({})
    while not progress.finished:
        torch.manual_seed(0)
        model = build_model(spec.model)
        progress = train_resumable(model, spec, x, y, quiet=True, store=store, resume=True,
                                   limit=PieceLimit(epochs=1))
        pieces += 1
    assert pieces == 2 and np.isnan(progress.stats["generative_loss"])
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(),
                                                 model.state_dict().values(), strict=True))


@pytest.mark.parametrize(("passes", "elapsed", "estimate", "stops"), [
    (0, 1e9, 1e9, False),   # a piece always makes one epoch of progress
    (1, 50.0, 9.0, False),  # 59 s < 60 s
    (1, 50.0, 11.0, True),  # the next epoch would end past the minute
    (1, 50.0, None, False),
])
def test_a_piece_stops_before_an_epoch_that_would_end_past_its_minutes(passes, elapsed,
                                                                       estimate, stops):
    assert PieceLimit(minutes=1).stops(passes, elapsed, estimate) is stops
    assert PieceLimit(epochs=2).stops(2, 0.0, None)


def test_state_encoding_keeps_tensors_arrays_tuples_and_key_types():
    torch.manual_seed(3)
    gen = torch.Generator().manual_seed(4)
    state = {"rng": capture_rng(gen), 0: {"step": torch.tensor(2.0)}, "betas": (0.9, 0.999),
             "lrs": [1e-3, None]}
    tensors: dict[str, torch.Tensor] = {}
    tree = json.loads(json.dumps(encode(state, tensors, "s")))
    back = decode(tree, tensors)
    assert back["betas"] == (0.9, 0.999) and back["lrs"] == [1e-3, None]
    assert torch.equal(back[0]["step"], state[0]["step"])
    assert back["rng"]["python"] == state["rng"]["python"]
    numpy_state = back["rng"]["numpy"]
    assert numpy_state[0] == "MT19937"
    assert np.array_equal(numpy_state[1], state["rng"]["numpy"][1])
    assert torch.equal(back["rng"]["data_order"], gen.get_state())


def test_a_corrupt_state_is_refused(tmp_path):
    store = StateStore(tmp_path / "s.resume")
    store.save(TrainingProgress({"dataset": "digits"}), {"w": torch.ones(3)})
    (tensor_file,) = store.directory.glob("*.safetensors")
    tensor_file.write_bytes(tensor_file.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(TrainingStateError, match="does not match the SHA-256"):
        store.load()
