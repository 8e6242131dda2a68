"""Synthesis: the Fréchet distance and `robbench synth`."""

from __future__ import annotations

import json

import numpy as np

from robbench.cli import main
from robbench.studies.synthesis import frechet_distance


def test_frechet_distance_is_zero_for_equal_sets_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    assert abs(frechet_distance(a, a)) < 1e-6
    near = frechet_distance(a, rng.normal(size=(500, 4)))
    far = frechet_distance(a, rng.normal(size=(500, 4)) + 2.0)
    assert 0 < near < far
    assert abs(far - 16.0) < 2.0  # |mu shift|^2 = 4 * 2^2, equal covariances


def test_synth_writes_grids_and_distances(tmp_path, capsys):
    assert main(["synth", "--dataset", "digits", "--n", "16", "--out", str(tmp_path),
                 "--quiet"]) == 0
    record = json.loads((tmp_path / "synthesis.json").read_text())
    for name in ("samples.png", "reconstructions.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert record["n"] == 397 and "not Inception" in record["features"]
    assert record["fd_reconstructions_vs_test"] < record["fd_samples_vs_test"]
    assert "samples vs test" in capsys.readouterr().out


def test_synth_refuses_a_discriminative_model(tmp_path, capsys):
    assert main(["synth", "--model", "convnet", "--out", str(tmp_path)]) == 2
    assert "model 'convnet' cannot synthesise; allowed: shortrun" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
