"""The shipped MNIST and Fashion-MNIST checkpoints: they match the registry defaults, load on
the CPU, keep their recorded clean accuracy, and reproduce the committed runs' clean
predictions; the committed MNIST results agree with each other.

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

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import first_300_test_images

from robbench.models import matched_control
from robbench.models.registry import default_spec, find_checkpoint, load_zoo_model, shipped_path
from robbench.records.scoring import accuracy_fields, predict_draws, wilson_interval
from robbench.records.store import DirectoryStore, cell_id

ROOT = Path(__file__).resolve().parents[1]
ZOO = ["mnist", "fashion-mnist"]
# a committed run of each dataset with the ConvNet's clean predictions on its test images
COMMITTED_RUN = {"mnist": ROOT / "results" / "mnist" / "pgd",
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


def test_the_cpu_run_reproduces_the_gpu_headline_within_its_intervals():
    """results/mnist/pgd (2 CPU cores) and the headline's runs/pgd (a GPU, other noise draws)
    are the same command's two runs: every cell lies within the other's 95% interval."""
    from robbench.records.store import read_summary, run_devices

    cpu = read_summary(ROOT / "results" / "mnist" / "pgd").set_index(["model", "attack", "eps"])
    gpu_dir = ROOT / "results" / "mnist" / "runs" / "pgd"
    gpu = read_summary(gpu_dir).set_index(["model", "attack", "eps"])
    assert run_devices(DirectoryStore(gpu_dir).read_meta()) == ["cuda"]
    assert sorted(cpu.index) == sorted(gpu.index) and len(cpu) == 8
    for key in cpu.index:
        a, b = cpu.loc[key], gpu.loc[key]
        assert a.n == b.n == 1000, key
        assert b.ci_low <= a.accuracy <= b.ci_high and a.ci_low <= b.accuracy <= a.ci_high, key


FULL_RUNS = ROOT / "results" / "mnist" / "full" / "runs"
HEADLINE_RUNS = ROOT / "results" / "mnist" / "runs"


# (full/runs/cw is 0.1.0's CW with one fixed c; the headline's runs/cw is the binary search)
@pytest.mark.parametrize(("attack", "cells"), [("fgsm", 8), ("pgd", 8), ("pgd-l2", 6),
                                                  ("transfer", 8)])
def test_the_full_test_set_runs_agree_with_the_headline_on_their_first_images(attack, cells):
    """results/mnist/full/runs/<attack> (all 10,000 images) restricted to the first 1,000 lies
    within the 95% interval of the headline's runs/<attack> (those 1,000 images, GPU, other noise
    draws and batches) in every cell."""
    from robbench.records.store import read_summary

    full_dir = FULL_RUNS / attack
    full = read_summary(full_dir).set_index(["model", "attack", "eps"])
    headline = read_summary(HEADLINE_RUNS / attack).set_index(["model", "attack", "eps"])
    assert sorted(full.index) == sorted(headline.index) and len(full) == cells
    assert (full.n == 10_000).all() and (headline.n == 1000).all()
    for model, attack_name, eps in full.index:
        outcomes = DirectoryStore(full_dir).outcomes(cell_id(model, attack_name, eps))
        first = accuracy_fields(outcomes["pred"][:, :1000], outcomes["label"][:1000])["accuracy"]
        row = headline.loc[(model, attack_name, eps)]
        assert row.ci_low <= first <= row.ci_high, (model, attack_name, eps, first)


@pytest.mark.parametrize("attack",
                         ["eot-pgd", "apgd", "autoattack-rand", "square", "eot-pgd-l2"])
def test_the_full_headline_reuses_the_headline_runs_of_its_eot_sized_attacks(attack):
    """With --n-eot 1000 (and the same --n-attack) the whole-test-set headline's EOT-sized
    attacks have the 1,000-image headline's configuration, so their runs are those runs, cell
    for cell."""
    import json

    full_dir, headline_dir = FULL_RUNS / attack, HEADLINE_RUNS / attack
    assert (json.loads((full_dir / "config.json").read_text())["config"]
            == json.loads((headline_dir / "config.json").read_text())["config"])
    cells = sorted(p.name for p in (headline_dir / "cells").glob("*.npz"))
    assert cells == sorted(p.name for p in (full_dir / "cells").glob("*.npz")) and cells
    for name in cells:
        with np.load(full_dir / "cells" / name) as a, np.load(headline_dir / "cells" / name) as b:
            assert a.files == b.files and all((a[k] == b[k]).all() for k in a.files), name
