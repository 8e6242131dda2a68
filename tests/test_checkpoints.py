"""Checkpoints: bit-exact round trip, verified hashes, no pickles, the registry's resolution."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_config

from robbench.models.checkpoint_io import CheckpointError, load_checkpoint, save_checkpoint
from robbench.models.config import ModelSpec, TrainConfig
from robbench.models.registry import (
    build_model,
    default_spec,
    find_checkpoint,
    load_model,
    override_spec,
    shipped_path,
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
        model, card = load_model(name, "digits")
        assert card["clean_test_accuracy"] >= 0.94
        assert card["command"].startswith("robbench train")
        assert model.config == spec.model


def test_overridden_spec_is_trained_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBBENCH_CACHE", str(tmp_path))
    spec = override_spec(default_spec("convnet", "digits"), epochs=1, width=4, latent=4)
    assert find_checkpoint(spec) is None
    model, card = load_model("convnet", "digits", spec=spec, quiet=True)
    cached = find_checkpoint(spec)
    assert cached is not None and cached.parent == tmp_path
    assert 0.0 <= card["clean_test_accuracy"] <= 1.0
    assert len(card["sha256"]) == 64 and card["spec"]["model"]["width"] == 4


def test_unknown_settings_are_rejected():
    with pytest.raises(ValueError, match="'widht' is unknown"):
        override_spec(default_spec("convnet", "digits"), widht=3)
