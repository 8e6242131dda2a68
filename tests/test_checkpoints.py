"""Checkpoints: bit-exact round trip, verified hashes, no pickles, the registry's resolution."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from conftest import tiny_config

from robbench.cli import main
from robbench.data.datasets import load_dataset
from robbench.models.checkpoint_io import CheckpointError, load_checkpoint, save_checkpoint
from robbench.models.config import ModelSpec, TrainConfig
from robbench.models.registry import (
    TRAINING_REVISION,
    build_model,
    default_spec,
    find_checkpoint,
    load_zoo_model,
    override_spec,
    shipped_path,
    train_and_save,
)


def _save_tiny(tmp_path, name="shortrun"):
    spec = ModelSpec("digits", tiny_config(name), TrainConfig())
    torch.manual_seed(0)
    model = build_model(spec.model)
    path = save_checkpoint(model, spec, tmp_path / "m.safetensors", {"note": "test"})
    return model, spec, path


def test_round_trip_is_bit_exact(tmp_path):
    for name in ("convnet", "shortrun"):
        model, spec, path = _save_tiny(tmp_path, name)
        loaded, card = load_checkpoint(path)
        assert ModelSpec.from_dict(card["spec"]) == spec and card["note"] == "test"
        for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(),
                                  strict=True):
            assert torch.equal(a, b), k


def test_corrupted_weights_are_refused(tmp_path):
    _, _, path = _save_tiny(tmp_path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(path)


def test_card_for_other_weights_is_refused(tmp_path):
    _, _, path = _save_tiny(tmp_path)
    card = json.loads(path.with_suffix(".json").read_text())
    card["spec"]["model"]["width"] = 5
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(path)


def test_pickle_files_are_never_loaded(tmp_path):
    _, _, path = _save_tiny(tmp_path)
    torch.save({"w": torch.zeros(1)}, path)  # a pickle where safetensors should be
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_shipped_digits_checkpoints_load_and_match_their_defaults():
    for name in ("convnet", "shortrun"):
        spec = default_spec(name, "digits")
        assert find_checkpoint(spec) == shipped_path(spec)
        model, card = load_zoo_model(name, "digits")
        assert card["clean_test_accuracy"] >= 0.94
        assert card["command"].startswith("robbench train")
        assert model.config == spec.model


def test_overridden_spec_is_trained_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBBENCH_CACHE", str(tmp_path))
    spec = override_spec(default_spec("convnet", "digits"), epochs=1, width=4, latent=4)
    assert find_checkpoint(spec) is None
    model, card = load_zoo_model("convnet", "digits", spec=spec, quiet=True)
    cached = find_checkpoint(spec)
    assert cached is not None and cached.parent == tmp_path
    assert 0.0 <= card["clean_test_accuracy"] <= 1.0
    assert len(card["sha256"]) == 64 and card["spec"]["model"]["width"] == 4


def test_a_model_cached_by_older_training_code_is_retrained(tmp_path, monkeypatch):
    """A cache written before initial weights were seeded matches its spec but not the weights
    that spec now trains: it is not reused, and training writes over it."""
    monkeypatch.setenv("ROBBENCH_CACHE", str(tmp_path))
    spec = override_spec(default_spec("convnet", "digits"), epochs=1, width=4, latent=4)
    _, card = load_zoo_model("convnet", "digits", spec=spec, quiet=True)
    assert card["training_revision"] == TRAINING_REVISION
    cached = find_checkpoint(spec)
    old_card = json.loads(cached.with_suffix(".json").read_text())
    del old_card["training_revision"]  # as robbench wrote cards before it kept one
    cached.with_suffix(".json").write_text(json.dumps(old_card))
    assert find_checkpoint(spec) is None
    _, retrained = load_zoo_model("convnet", "digits", spec=spec, quiet=True)
    assert retrained["training_revision"] == TRAINING_REVISION
    assert retrained["sha256"] == card["sha256"] and find_checkpoint(spec) == cached


def test_a_shipped_checkpoint_is_used_whatever_revision_trained_it(tmp_path, monkeypatch):
    """The shipped checkpoints are the reference weights (the MNIST ones predate seeding)."""
    import robbench.models.registry as registry

    monkeypatch.setattr(registry, "SHIPPED_DIR", tmp_path)
    monkeypatch.setenv("ROBBENCH_CACHE", str(tmp_path / "cache"))
    spec = default_spec("convnet", "digits")
    save_checkpoint(build_model(spec.model), spec, shipped_path(spec), {"note": "no revision"})
    assert find_checkpoint(spec) == tmp_path / "digits-convnet.safetensors"


def test_unknown_settings_are_rejected():
    with pytest.raises(ValueError, match="'widht' is unknown"):
        override_spec(default_spec("convnet", "digits"), widht=3)


@pytest.mark.parametrize("model", ["convnet", "shortrun"])
def test_retraining_a_spec_gives_the_same_weights_whatever_ran_before(tmp_path, model):
    """The model card's command reproduces its weights: initialisation is seeded from the spec,
    not left to the process's random state (which differs from run to run)."""
    spec = override_spec(default_spec(model, "digits"), epochs=1, generative_epochs=1,
                         discriminative_epochs=1, bptt_epochs=0, width=4, latent=4,
                         langevin_steps=2, labels=50)
    cards = []
    for state in (1, 2):
        torch.manual_seed(state)
        cards.append(train_and_save(spec, tmp_path / f"{state}.safetensors", quiet=True)[1])
    assert cards[0]["sha256"] == cards[1]["sha256"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["convnet", "shortrun"])
def test_the_shipped_digits_checkpoints_retrain_from_their_cards(tmp_path, model):
    """Running the command on a shipped digits card, as a user would, gives the shipped weights
    (same torch build on a CPU; other builds or CPUs may differ in the last bits)."""
    import shlex
    import subprocess
    import sys

    card = json.loads(shipped_path(default_spec(model, "digits")).with_suffix(".json").read_text())
    argv = shlex.split(card["command"])
    assert argv[0] == "robbench"
    out = tmp_path / "retrained.safetensors"
    argv[argv.index("--out") + 1] = str(out)
    subprocess.run([sys.executable, "-m", "robbench", *argv[1:]], check=True,
                   capture_output=True)
    assert json.loads(out.with_suffix(".json").read_text())["sha256"] == card["sha256"]


def test_a_trained_checkpoint_is_a_model_of_the_cli(tmp_path, capsys):
    """`--model PATH.safetensors=NAME` attacks what `robbench train --out` wrote: the row is
    named NAME, records the card's SHA-256, and its clean accuracy is the checkpoint's own."""
    model, _, path = _save_tiny(tmp_path, "convnet")
    out = tmp_path / "runs"
    assert main(["run", "--model", f"{path}=mine", "--attack", "fgsm", "--eps", "0.1",
                 "--n", "20", "--quiet", "--out", str(out)]) == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    summary = pd.read_csv(run_dir / "summary.csv", dtype={"checkpoint": str})
    assert set(summary.model) == {"mine"}
    card = json.loads(path.with_suffix(".json").read_text())
    assert set(summary.checkpoint) == {card["sha256"][:12]}
    data = load_dataset("digits")
    with torch.no_grad():
        expected = (model.eval()(data.x_test[:20]).argmax(1) == data.y_test[:20]).float().mean()
    clean = summary[summary.attack == "none"].accuracy.item()
    assert clean == pytest.approx(expected.item(), abs=1e-9)


def test_a_checkpoint_of_another_dataset_is_refused_in_one_line(tmp_path, capsys):
    spec = ModelSpec("mnist", tiny_config("convnet"), TrainConfig())
    path = save_checkpoint(build_model(spec.model), spec, tmp_path / "m.safetensors", {})
    out = tmp_path / "runs"
    assert main(["run", "--model", str(path), "--attack", "fgsm", "--n", "5", "--quiet",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "trained on 'mnist', not on the run's dataset 'digits'" in err and "\n" not in err
    assert not out.exists() or not any(out.iterdir())
