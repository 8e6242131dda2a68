"""Claim 2 study: N labels, M unlabelled images, against a ConvNet on the same labels."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from robbench.cli import main
from robbench.models.registry import build_model, default_spec, override_spec
from robbench.models.training_loop import train_model
from robbench.studies.unlabelled import scaled_spec, unlabelled_study, write_study

RESULTS = Path(__file__).resolve().parents[1] / "results"
COMMITTED_STUDIES = sorted(RESULTS.glob("**/unlabelled.csv"))


def _steps(epochs: float, size: int, batch: int) -> int:
    return round(epochs * math.ceil(size / batch))


def test_every_stage_takes_the_default_steps_times_the_budget():
    # digits: 1,400 training images, batch 64, so 22 steps per full-data epoch.
    spec = scaled_spec("shortrun", "digits", 100, 300, 1400)
    t = spec.train
    assert t.labels == 100 and t.unlabelled == 300
    assert _steps(t.generative_epochs, 300, 64) == 20 * 22
    assert _steps(t.discriminative_epochs, 100, 64) == 10 * 22
    assert _steps(t.bptt_epochs, 100, 64) == 20 * 22
    half = scaled_spec("shortrun", "digits", 100, None, 1400, budget=0.5).train
    assert _steps(half.generative_epochs, 1400, 64) == 10 * 22
    assert _steps(half.bptt_epochs, 100, 64) == 10 * 22
    convnet = scaled_spec("convnet", "digits", 700, None, 1400).train
    assert _steps(convnet.epochs, 700, 64) == 30 * 22


@pytest.mark.parametrize(("budget", "steps"), [(0.1, (94, 47, 141)), (0.3, (281, 141, 422))])
def test_the_mnist_studies_take_the_steps_the_readme_states(budget, steps):
    # README, "Learning from unlabelled data": 60,000 training images, batch 128
    for labels, unlabelled in ((100, 100), (100, None), (1000, 1000), (1000, None)):
        t = scaled_spec("shortrun", "mnist", labels, unlabelled, 60000, budget=budget,
                        base={"bptt_epochs": 3}).train
        pool = unlabelled or 60000
        assert (_steps(t.generative_epochs, pool, 128),
                _steps(t.discriminative_epochs, labels, 128),
                _steps(t.bptt_epochs, labels, 128)) == steps


def test_a_base_recipe_is_scaled_like_the_registered_one():
    """--base changes the recipe before scaling: the study's steps follow the base's epochs."""
    registered = scaled_spec("shortrun", "mnist", 100, None, 60000, budget=0.1).train
    based = scaled_spec("shortrun", "mnist", 100, None, 60000, budget=0.1,
                        base={"bptt_epochs": "6"}).train
    default = default_spec("shortrun", "mnist").train
    assert based.bptt_epochs == pytest.approx(registered.bptt_epochs * 6 / default.bptt_epochs)
    assert based.generative_epochs == registered.generative_epochs


def test_a_bad_base_setting_is_a_one_line_error(capsys, tmp_path):
    for base, message in (("nonsense=1", "setting 'nonsense' is unknown"),
                          ("bptt_epochs=many", "setting bptt_epochs='many' is not")):
        assert main(["unlabelled", "--base", base, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


def test_fractional_epochs_stop_within_the_last_pass():
    spec = override_spec(default_spec("convnet", "digits"), epochs=1.5, batch_size=10)
    model = build_model(spec.model)
    steps = []
    model.register_forward_hook(lambda *_: steps.append(1))
    train_model(model, spec, torch.rand(40, 1, 8, 8), torch.randint(0, 10, (40,)), quiet=True)
    assert len(steps) == 6  # 4 steps per pass, 1.5 passes


def test_a_pass_left_without_steps_keeps_the_last_real_loss():
    # 2.1 passes of 4 steps round to 8 steps: the third pass takes none
    spec = override_spec(default_spec("convnet", "digits"), epochs=2.1, batch_size=10)
    model = build_model(spec.model)
    stats = train_model(model, spec, torch.rand(40, 1, 8, 8), torch.randint(0, 10, (40,)),
                        quiet=True)
    assert stats["loss"] > 0.5  # cross-entropy of ten classes after 8 steps, not an empty pass


def test_study_rows_cover_the_convnet_and_each_unlabelled_size(tmp_path):
    fast = {"epochs": 1, "generative_epochs": 1, "discriminative_epochs": 1, "bptt_epochs": 1}
    frame = unlabelled_study("digits", [35], ["labels", 32, 200, 9999], n_eval=20, draws=2,
                             quiet=True, overrides=fast, grid_dir=tmp_path)
    assert list(frame.model) == ["convnet"] + ["shortrun"] * 4
    # the sizes drawn, not those asked for: 35 labels are 3 of each class (so M = 32 is not
    # below them), and 9,999 generative images are the 1,400 there are
    assert list(frame.labels) == [30] * 5
    assert list(frame.unlabelled) == ["-", 35, 32, 200, 1400]
    assert frame.clean.between(0, 1).all() and frame["pgd_0.1"].between(0, 1).all()
    assert frame.frechet_distance.iloc[1:].gt(0).all()
    assert {p.name for p in tmp_path.glob("*.png")} == {
        "samples-N30-M35.png", "samples-N30-M32.png", "samples-N30-M200.png",
        "samples-N30-M1400.png"}


def test_bad_sizes_are_one_line_errors(capsys, tmp_path):
    assert main(["unlabelled", "--labels", "ten", "--out", str(tmp_path)]) == 2
    assert "labels 'ten' is not a positive integer" in capsys.readouterr().err
    assert main(["unlabelled", "--labels", "all", "--out", str(tmp_path)]) == 2
    assert "labels 'all' is not a positive integer" in capsys.readouterr().err
    assert main(["unlabelled", "--unlabelled", "some", "--out", str(tmp_path)]) == 2
    assert ("unlabelled 'some' is not a positive integer or 'all' or 'labels'"
            in capsys.readouterr().err)
    with pytest.raises(SystemExit) as exit_info:
        main(["unlabelled", "--budget", "0", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "'0' must be a finite number > 0" in capsys.readouterr().err
    # sizes no labelled set can take fail before anything is trained
    assert main(["unlabelled", "--labels", "100", "--unlabelled", "5", "--out",
                 str(tmp_path)]) == 2
    assert ("unlabelled 5 is below every label budget (100 labelled images and up)"
            in capsys.readouterr().err)
    assert main(["unlabelled", "--labels", "5", "--out", str(tmp_path)]) == 2
    assert "labels 5 is fewer than the 10 classes" in capsys.readouterr().err
    assert main(["unlabelled", "--labels", "100,99999", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "labels 99999 needs 9999 images of every class" in err
    assert "the smallest class has 135; allowed: at most 1350" in err
    assert not any(tmp_path.iterdir())


def test_several_training_seeds_give_a_row_each_and_a_mean_and_spread(tmp_path):
    from robbench.studies.unlabelled import seed_summary, write_study

    fast = {"epochs": 1, "generative_epochs": 1, "discriminative_epochs": 1, "bptt_epochs": 1}
    frame = unlabelled_study("digits", [30], ["labels"], n_eval=20, draws=2, quiet=True,
                             overrides=fast, train_seeds=(0, 1))
    assert list(zip(frame.model, frame.seed, strict=True)) == [
        ("convnet", 0), ("shortrun", 0), ("convnet", 1), ("shortrun", 1)]
    assert frame.sha256.nunique() == 4  # each seed trains its own models
    summary = seed_summary(frame).set_index("model")
    assert summary.seeds.tolist() == [2, 2]
    clean = frame.groupby("model").clean
    mean, sd = clean.mean()["shortrun"], clean.std()["shortrun"]
    assert summary.loc["shortrun", "clean"] == f"{mean:.3f} ± {sd:.3f}"
    assert summary.loc["convnet", "frechet_distance"] == "-"
    text = write_study(frame, tmp_path, "robbench unlabelled").read_text()
    assert "Mean ± standard deviation over the training seeds" in text and "seed |" in text
    assert "Paired by seed" not in text  # one Short Run size: nothing to pair


def test_paired_differences_subtract_the_same_seeds_row():
    import pandas as pd

    from robbench.studies.unlabelled import paired_differences

    rows = [("convnet", "-", s, 0.8, None) for s in (0, 1, 2)]
    rows += [("shortrun", 100, s, c, f) for s, c, f in ((0, 0.80, 60.0), (1, 0.90, 50.0),
                                                         (2, 0.70, 70.0))]
    rows += [("shortrun", 1400, s, c, f) for s, c, f in ((0, 0.85, 65.0), (1, 0.91, 45.0),
                                                          (2, 0.69, 80.0))]
    frame = pd.DataFrame([{"model": m, "labels": 100, "seed": s, "unlabelled": u, "clean": c,
                           "pgd_0.1": c / 2, "frechet_distance": f} for m, u, s, c, f in rows])
    paired = paired_differences(frame).iloc[0]
    assert (paired.unlabelled, paired.versus, paired.seeds) == (1400, 100, 3)
    assert paired.clean == "+0.017 ± 0.031 (2/3 higher)"  # differences .05, .01, -.01
    assert paired.frechet_distance == "+3.333 ± 7.638 (2/3 higher)"  # 5, -5, 10


def test_bad_training_seeds_are_one_line_errors(capsys, tmp_path):
    for bad, message in (("0,0", "needs distinct seeds"), ("-1", "must be integers >= 0"),
                         ("a", "is not a comma-separated list of integers")):
        with pytest.raises(SystemExit) as exit_info:
            main(["unlabelled", "--train-seeds", bad, "--out", str(tmp_path)])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert not any(tmp_path.iterdir())


def test_the_committed_studies_are_found():
    assert {p.parent.relative_to(RESULTS).as_posix() for p in COMMITTED_STUDIES} >= {
        "digits", "mnist", "mnist/unlabelled-0.3"}


@pytest.mark.parametrize("csv", COMMITTED_STUDIES, ids=lambda p: str(p.parent.relative_to(RESULTS)))
def test_committed_study_tables_are_rendered_from_their_csv(csv, tmp_path):
    """The summaries, paired differences and per-seed rows of a committed unlabelled.md are
    what write_study makes of its unlabelled.csv: nothing in the table was typed by hand."""
    committed = (csv.parent / "unlabelled.md").read_text()
    command = committed.splitlines()[0].strip("`")
    assert write_study(pd.read_csv(csv), tmp_path, command).read_text() == committed
