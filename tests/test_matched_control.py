"""The accuracy-matched ConvNet: the search for its steps, its card, loading it by name, and
its place in the headlines."""

from __future__ import annotations

import pytest

import robbench.models.matched_control as matched
from robbench.cli import main
from robbench.models.checkpoint_io import read_card
from robbench.models.zoo import load_named_model, model_names, register_model
from robbench.studies.headline import HeadlineConfig


def test_the_search_finds_the_fewest_steps_that_reach_the_target(monkeypatch, digits):
    calls = []

    def fake_accuracy(dataset, steps, data, device):
        calls.append(steps)
        return min(1.0, steps / 100)

    monkeypatch.setattr(matched, "steps_accuracy", fake_accuracy)
    steps, tried = matched.search_steps("digits", 0.37, digits)
    assert steps == 37 and tried[37] >= 0.37 and tried[36] < 0.37
    assert calls[:4] == [8, 16, 32, 64] and len(calls) == len(set(calls))
    with pytest.raises(ValueError, match=r"full recipe \(660 steps\) reaches 1.0000, below the "
                                         r"target accuracy 1.5000"):
        matched.search_steps("digits", 1.5, digits)


def test_train_writes_a_convnet_stopped_at_the_target_with_its_search_on_the_card(tmp_path,
                                                                                  capsys):
    out = tmp_path / "digits-convnet-matched.safetensors"
    assert main(["train", "--model", "convnet-matched", "--dataset", "digits",
                 "--match-accuracy", "0.5", "--out", str(out), "--quiet"]) == 0
    card = read_card(out)
    record = card["matched"]
    steps = record["steps"]
    assert card["model"] == "convnet-matched" and record["target_from"] == "given"
    # the card's accuracy is the retrained model's, which the search measured too
    assert card["clean_test_accuracy"] == pytest.approx(record["search"][str(steps)], abs=1e-6)
    assert card["clean_test_accuracy"] >= 0.5 > record["search"].get(str(steps - 1), 0.0)
    assert steps < record["full_recipe_steps"] == 660
    assert "convnet-matched on digits" in capsys.readouterr().out


def test_the_zoo_loads_it_by_name_matched_to_the_short_run_classifier(monkeypatch, tmp_path):
    monkeypatch.setenv("ROBBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(matched, "shortrun_accuracy", lambda *a, **k: 0.4)
    loaded = load_named_model("convnet-matched", "digits")
    assert loaded.card["matched"]["target_accuracy"] == 0.4
    assert loaded.card["clean_test_accuracy"] >= 0.4
    assert "convnet-matched" in model_names()
    with pytest.raises(ValueError, match="built in"):
        register_model("convnet-matched", lambda dataset: None)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(matched, "train_matched", no_training)
    assert load_named_model("convnet-matched", "digits").sha256 == loaded.sha256  # cached


def test_the_headlines_of_mnist_and_fashion_mnist_include_the_control():
    assert HeadlineConfig(dataset="mnist").models == ("convnet", "shortrun", "convnet-matched")
    assert HeadlineConfig(dataset="fashion-mnist").models[-1] == "convnet-matched"
    assert HeadlineConfig(dataset="digits").models == ("convnet", "shortrun")
    assert HeadlineConfig(dataset="mnist", models=("convnet",)).models == ("convnet",)
