"""The shipped MNIST checkpoints: they match the registry defaults, load on the CPU, and keep
their recorded clean accuracy on the first test images (where the MNIST files are present)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robbench.datasets import load_dataset
from robbench.evaluation import predict_draws, wilson_interval
from robbench.models.registry import default_spec, find_checkpoint, load_model, shipped_path

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
N = 300


@pytest.mark.parametrize("name", ["convnet", "shortrun"])
def test_mnist_checkpoints_are_shipped_for_the_default_spec(name):
    spec = default_spec(name, "mnist")
    assert find_checkpoint(spec) == shipped_path(spec)


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason="MNIST IDX files not present")
@pytest.mark.parametrize("name", ["convnet", "shortrun"])
def test_mnist_checkpoints_keep_their_clean_accuracy(name):
    data = load_dataset("mnist", MNIST_DIR, download=False)
    model, card = load_model(name, "mnist")
    torch.manual_seed(0)
    preds = predict_draws(model, data.x_test[:N], draws=1)
    correct = (preds[0] == data.y_test[:N]).sum().item()
    low, high = wilson_interval(correct, N)
    # The card's accuracy (all 10,000 images) lies within this subset's 95% interval, give or
    # take 2 points for the first images being easier than the average (a broken or mismatched
    # checkpoint scores near 10%).
    assert low - 0.02 <= card["clean_test_accuracy"] <= high + 0.02
