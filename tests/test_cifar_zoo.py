"""The zoo's CIFAR-10/100 recipes: the thesis's architecture at 32x32x3, trained end to end on
a synthetic CIFAR-10 for one step, no checkpoint shipped."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from conftest import write_cifar

from robbench.cli import main
from robbench.models import registry
from robbench.models.build import build_model

TINY = dict(width=4, latent=6, head_hidden=(8, 6), langevin_steps=2)
ONE_STEP = dict(epochs=1, generative_epochs=1, discriminative_epochs=1, bptt_epochs=1)


@pytest.mark.parametrize("dataset, classes", [("cifar10", 10), ("cifar100", 100)])
def test_thesis_architectures_take_cifar_images(dataset, classes):
    x = torch.rand(2, 3, 32, 32)
    for name in ("convnet", "shortrun"):
        spec = registry.override_spec(registry.default_spec(name, dataset), **TINY)
        assert (spec.model.arch, spec.model.image_size, spec.model.channels) == ("thesis", 32, 3)
        torch.manual_seed(0)
        model = build_model(spec.model)
        assert model(x).shape == (2, classes)
    assert model.sample(3).shape == (3, 3, 32, 32)


def test_the_svhn_thesis_generator_keeps_its_28x28_shapes():
    model = build_model(registry.default_spec("shortrun", "svhn").model)
    assert model.sample(1).shape == (1, 3, 28, 28)
    assert tuple(model.generator.layers[0].weight.shape[2:]) == (3, 3)


@pytest.fixture
def tiny_cifar_defaults(monkeypatch):
    """The cifar10 registry defaults shrunk so that training takes a second."""
    monkeypatch.setitem(registry._ARCH, "cifar10", {**registry._ARCH["cifar10"], **TINY})
    monkeypatch.setitem(registry._TRAIN, "cifar10", {
        m: {**registry._TRAIN["cifar10"][m], **ONE_STEP} for m in ("convnet", "shortrun")})


@pytest.mark.parametrize("model", ["convnet", "shortrun"])
def test_train_on_synthetic_cifar10_then_run_the_cached_model(tmp_path, tiny_cifar_defaults,
                                                              model, capsys):
    write_cifar(tmp_path / "data" / "cifar10", "cifar10", "binary")
    assert main(["train", "--model", model, "--dataset", "cifar10", "--data-dir",
                 str(tmp_path / "data"), "--quiet"]) == 0
    path = registry.find_checkpoint(registry.default_spec(model, "cifar10"))
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["dataset"] == "cifar10" and card["test_examples"] == 4
    # 15 training images in batches of 100: every stage is one optimiser step.
    assert card["spec"]["train"]["batch_size"] == 100
    out = tmp_path / "runs"
    assert main(["run", "--model", model, "--dataset", "cifar10", "--data-dir",
                 str(tmp_path / "data"), "--attack", "fgsm", "--eps", "0.03", "--draws", "1",
                 "--selection-draws", "1", "--quiet", "--out", str(out)]) == 0
    (run_dir,) = list(out.iterdir())
    assert set(pd.read_csv(run_dir / "summary.csv").model) == {model}


def test_list_says_no_cifar_checkpoint_is_shipped(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "cifar10, cifar100" in lines[0]
    zoo = [line for line in lines if "cifar" in line and line.split()[0] in registry.MODEL_NAMES]
    assert len(zoo) == 4 and all("no checkpoint shipped" in line for line in zoo)
    assert any(line.strip().startswith("robustbench:NAME") for line in lines)
