"""SVHN's .mat format and the thesis preset, on small synthetic files of the same format."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.io import savemat

from robbench.cli import main
from robbench.cli.presets import PRESETS
from robbench.data.datasets import DataNotFoundError, load_dataset
from robbench.models import registry
from robbench.models.config import ModelConfig
from robbench.models.convnet import ConvNet
from robbench.models.shortrun import ShortRunClassifier

TINY_THESIS = dict(width=4, latent=6, head_hidden=(8, 6), langevin_steps=2)


def _fake_svhn(directory, n_train=60, n_test=40, seed=0):
    """SVHN layout: X uint8 (32, 32, 3, N), y (N, 1) in 1..10 with 10 meaning digit 0."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, n in (("train_32x32.mat", n_train), ("test_32x32.mat", n_test)):
        labels = (np.arange(n) % 10 + 1).reshape(n, 1)
        rng.shuffle(labels)
        savemat(directory / name, {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                                   "y": labels.astype(np.uint8)})
    return directory


def test_svhn_mat_files_load_resized_with_label_ten_as_zero(tmp_path):
    _fake_svhn(tmp_path / "svhn")
    data = load_dataset("svhn", tmp_path, download=False)
    assert data.x_train.shape == (60, 3, 28, 28) and data.x_test.shape == (40, 3, 28, 28)
    assert data.x_train.min() >= 0 and data.x_train.max() <= 1
    assert set(data.y_train.tolist()) == set(range(10))
    # The thesis's class-balanced test set (100 per class) comes first: here 4 per class.
    assert torch.bincount(data.y_test[:40], minlength=10).tolist() == [4] * 10


def test_missing_svhn_names_the_directories_searched(tmp_path):
    with pytest.raises(DataNotFoundError, match="train_32x32.mat.*not found in .*svhn"):
        load_dataset("svhn", tmp_path, download=False)


def test_a_mat_file_without_svhn_arrays_is_rejected(tmp_path):
    (tmp_path / "svhn").mkdir()
    for name in ("train_32x32.mat", "test_32x32.mat"):
        savemat(tmp_path / "svhn" / name, {"images": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="not an SVHN .mat file"):
        load_dataset("svhn", tmp_path, download=False)


def test_thesis_architectures_take_svhn_shaped_images():
    kw = dict(channels=3, image_size=28, arch="thesis", activation="mish", **TINY_THESIS)
    x = torch.rand(2, 3, 28, 28)
    assert ConvNet(ModelConfig(name="convnet", **kw))(x).shape == (2, 10)
    model = ShortRunClassifier(ModelConfig(name="shortrun", **kw))
    assert model.sample(3).shape == (3, 3, 28, 28) and model(x).shape == (2, 10)


def test_thesis_registry_defaults_follow_the_thesis():
    spec = registry.default_spec("shortrun", "svhn")
    m = spec.model
    assert (m.arch, m.latent, m.head_hidden) == ("thesis", 200, (140, 80))
    # sigma 6.4 on the thesis's [-1, 1] scale is 3.2 on [0, 1]; delta 0.015, K 20.
    assert (spec.model.sigma, spec.model.step_size, spec.model.langevin_steps) == (3.2, 0.015, 20)
    t = spec.train
    assert (t.optimizer, t.lr, t.bptt_lr, t.anneal_from) == ("ranger", 5e-4, 1e-4, 0.75)
    assert (t.labels, t.unlabelled) == (10_000, 40_000)
    assert PRESETS["thesis"]["eps"] == "0.005,0.01,0.015,0.02,0.025,0.03"


@pytest.fixture
def tiny_thesis_defaults(monkeypatch):
    """The svhn registry defaults shrunk so that training takes a second."""
    monkeypatch.setitem(registry._ARCH, "svhn", {**registry._ARCH["svhn"], **TINY_THESIS})
    small = dict(epochs=1, generative_epochs=1, discriminative_epochs=1, bptt_epochs=1,
                 labels=30, batch_size=20)
    monkeypatch.setitem(registry._TRAIN, "svhn", {
        m: {**registry._TRAIN["svhn"][m], **small} for m in ("convnet", "shortrun")
    })


def test_train_preset_thesis_uses_ranger_on_svhn(tmp_path, tiny_thesis_defaults, capsys):
    data_dir = _fake_svhn(tmp_path / "data")
    out = tmp_path / "m.safetensors"
    assert main(["train", "--preset", "thesis", "--model", "shortrun", "--data-dir",
                 str(data_dir), "--quiet", "--out", str(out)]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["dataset"] == "svhn" and card["spec"]["model"]["arch"] == "thesis"
    assert card["spec"]["train"]["optimizer"] == "ranger"
    assert "--preset thesis" in card["command"]


def test_run_preset_thesis_is_fgsm_on_the_thesis_grid(tmp_path, tiny_thesis_defaults):
    data_dir = _fake_svhn(tmp_path / "data")
    assert main(["run", "--preset", "thesis", "--data-dir", str(data_dir), "--draws", "1",
                 "--quiet", "--out", str(tmp_path / "runs")]) == 0
    (run_dir,) = list((tmp_path / "runs").iterdir())
    summary = pd.read_csv(run_dir / "summary.csv")
    attacked = summary[summary.attack != "none"]
    assert set(summary.dataset) == {"svhn"} and set(attacked.attack) == {"fgsm"}
    assert sorted(set(attacked.eps)) == [0.005, 0.01, 0.015, 0.02, 0.025, 0.03]
    assert (summary.n == 40).all()  # all 40 synthetic test images (the preset asks for 1,000)


def test_preset_thesis_refuses_another_dataset(tmp_path, capsys):
    assert main(["run", "--preset", "thesis", "--dataset", "mnist", "--quiet",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--preset thesis runs on dataset 'svhn'; got --dataset 'mnist'" in err
