"""Claim 2 study: N labels, M unlabelled images, against a ConvNet on the same labels."""

from __future__ import annotations

from robbench.cli import main
from robbench.unlabelled import scaled_spec, unlabelled_study


def test_label_stage_epochs_scale_with_the_label_budget():
    spec = scaled_spec("shortrun", "digits", 100, 300, 1400)
    assert spec.train.labels == 100 and spec.train.unlabelled == 300
    assert spec.train.bptt_epochs == 20 * 14 and spec.train.generative_epochs == 20
    assert scaled_spec("convnet", "digits", 700, None, 1400).train.epochs == 30 * 2


def test_study_rows_cover_the_convnet_and_each_unlabelled_size():
    fast = {"epochs": 1, "generative_epochs": 1, "discriminative_epochs": 1, "bptt_epochs": 1}
    frame = unlabelled_study("digits", [30], [30, 200, 10], n_eval=20, draws=2, quiet=True,
                             overrides=fast)
    assert list(frame.model) == ["convnet", "shortrun", "shortrun"]  # M=10 < N is skipped
    assert list(frame.unlabelled) == ["-", 30, 200]
    assert frame.clean.between(0, 1).all() and frame["pgd_0.1"].between(0, 1).all()
    assert frame.frechet_distance.iloc[1:].gt(0).all()


def test_bad_sizes_are_one_line_errors(capsys, tmp_path):
    assert main(["unlabelled", "--labels", "ten", "--out", str(tmp_path)]) == 2
    assert "labels 'ten' is not a positive integer or 'all'" in capsys.readouterr().err
