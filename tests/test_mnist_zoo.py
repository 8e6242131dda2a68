"""The shipped MNIST and Fashion-MNIST checkpoints: they match the registry defaults, load on
the CPU, keep their recorded clean accuracy, and reproduce the committed runs' clean
predictions; the committed headlines were computed on them.

``tests/data/<dataset>_test_first300.npz`` holds the first 300 official test images (uint8)
and labels, so these tests run without the IDX files; each was written from them by (here for
MNIST; for Fashion-MNIST, ``fashion-mnist``, its directory and
``fashion_mnist_test_first300``)::

    python -c "import numpy as np; from robbench.data.datasets import load_dataset; \
d = load_dataset('mnist', '../shared/data/mnist', download=False); \
np.savez_compressed('tests/data/mnist_test_first300.npz', \
x=(d.x_test[:300, 0].numpy() * 255).round().astype(np.uint8), \
y=d.y_test[:300].numpy().astype(np.uint8))"
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import first_300_test_images

from robbench.file_digest import file_digest
from robbench.models import matched_control
from robbench.models.registry import default_spec, find_checkpoint, load_zoo_model, shipped_path
from robbench.records.scoring import predict_draws, wilson_interval
from robbench.records.store import DirectoryStore, cell_id

ROOT = Path(__file__).resolve().parents[1]
ZOO = ["mnist", "fashion-mnist"]
# a committed run of each dataset with the ConvNet's clean predictions on its test images
COMMITTED_RUN = {"mnist": ROOT / "results" / "mnist" / "runs" / "pgd",
                 "fashion-mnist": ROOT / "results" / "fashion-mnist" / "runs" / "pgd"}


@pytest.fixture(scope="module", params=ZOO)
def first_test_images(request):
    return (request.param, *first_300_test_images(request.param))


@pytest.mark.parametrize("dataset", ZOO)
@pytest.mark.parametrize("name", ["convnet", "shortrun"])
def test_checkpoints_are_shipped_for_the_default_spec(name, dataset):
    spec = default_spec(name, dataset)
    assert find_checkpoint(spec) == shipped_path(spec)


@pytest.mark.parametrize("name", ["convnet", "shortrun"])
def test_checkpoints_keep_their_clean_accuracy(name, first_test_images):
    dataset, x, y = first_test_images
    model, card = load_zoo_model(name, dataset)
    torch.manual_seed(0)
    correct = (predict_draws(model, x, 1, 500, "cpu")[0] == y).sum().item()
    low, high = wilson_interval(correct, len(y))
    # The card's accuracy (all 10,000 images) lies within this subset's 95% interval, give or
    # take 2 points for the first images being easier than the average (a broken or mismatched
    # checkpoint scores near 10%).
    assert low - 0.02 <= card["clean_test_accuracy"] <= high + 0.02


def test_the_shipped_matched_controls_are_matched_to_the_shipped_short_run_classifiers(
        first_test_images, monkeypatch):
    """convnet-matched loads its shipped checkpoint (no search, no training), stopped at the
    shipped Short Run card's clean accuracy, and keeps its own card's accuracy on these images."""
    dataset, x, y = first_test_images

    def no_training(*args, **kwargs):
        raise AssertionError("the shipped control was not used")

    monkeypatch.setattr(matched_control, "train_matched", no_training)
    model, card = matched_control.load_matched(dataset)
    assert Path(card["path"]) == matched_control.shipped_matched_path(dataset)
    _, shortrun_card = load_zoo_model("shortrun", dataset)
    # the search stops at the first step count reaching the target: within a few test images
    assert card["matched"]["target_accuracy"] == shortrun_card["clean_test_accuracy"]
    assert 0 <= card["clean_test_accuracy"] - shortrun_card["clean_test_accuracy"] < 0.005
    correct = (predict_draws(model, x, 1, 500, "cpu")[0] == y).sum().item()
    low, high = wilson_interval(correct, len(y))
    assert low - 0.02 <= card["clean_test_accuracy"] <= high + 0.02


def test_the_committed_run_is_reproduced(first_test_images):
    """The deterministic ConvNet's clean predictions equal those of the committed run."""
    dataset, x, y = first_test_images
    committed = DirectoryStore(COMMITTED_RUN[dataset]).outcomes(cell_id("convnet", "none", 0))
    assert (committed["label"][: len(y)] == y.numpy()).all()
    model, _ = load_zoo_model("convnet", dataset)
    assert (predict_draws(model, x, 1, 500, "cpu")[0].numpy()
            == committed["pred"][0][: len(y)]).all()


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_the_committed_headline_was_computed_on_the_shipped_checkpoints(dataset):
    """Every committed headline run of the dataset names, by SHA-256, the checkpoints robbench
    ships now: its tables describe the models a user loads."""
    runs = sorted(p.parent for p in (ROOT / "results" / dataset / "runs").glob("*/config.json"))
    assert runs
    for run in runs:
        for name, recorded in json.loads((run / "config.json").read_text())["checkpoints"].items():
            path = (matched_control.shipped_matched_path(dataset) if name == "convnet-matched"
                    else shipped_path(default_spec(name, dataset)))
            assert recorded["sha256"] == file_digest(path), (run.name, name)
