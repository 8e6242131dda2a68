"""The recipe ablation: one row per finished setting, resumable at every epoch boundary."""

from __future__ import annotations

import pandas as pd
import pytest

from robbench.cli import main
from robbench.models.registry import typed_overrides
from robbench.studies.ablation import AblationConfig, ablation_spec

# Two tiny settings on 200 digits: the three stages (1 + 1 + 1 epochs) at sigma 0.2, and the
# joint objective for 2 epochs.
BASE = ("width=4 latent=4 langevin_steps=3 generative_epochs=1 discriminative_epochs=1 "
        "bptt_epochs=1 head_hidden=")
GRID = ["--setting", "stages: sigma=0.2", "--setting", "joint: objective=joint epochs=2"]


def _ablation(out, *extra: str) -> int:
    return main(["ablation", "--dataset", "digits", "--subset", "200", "--n", "100", "--base",
                 BASE, *GRID, "--quiet", "--out", str(out), *extra])


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    assert _ablation(out) == 0
    return pd.read_csv(out / "ablation.csv")


def test_each_setting_is_a_row_with_its_changes_and_cost(whole):
    assert list(whole.setting) == ["stages", "joint"]
    assert list(whole.changes) == ["sigma=0.2", "objective=joint, epochs=2"]
    assert whole.clean.between(0, 1).all() and (whole.n == 100).all()
    assert (whole.ci_low <= whole.clean).all() and (whole.clean <= whole.ci_high).all()
    # the same architecture and chain: one attack step costs the same
    assert list(whole.step_flops_vs_first) == [1.0, 1.0]
    assert whole.train_stats[1].startswith("loss ")


def test_a_study_run_in_pieces_gives_the_rows_of_one_run(tmp_path, capsys, whole):
    runs = 0
    while "2 of 2 settings done\n" not in capsys.readouterr().out:
        assert _ablation(tmp_path, "--max-minutes", "1e-6") == 0
        runs += 1
        assert runs <= 6  # one epoch (of 3 + 2) per run, at least
    pieces = pd.read_csv(tmp_path / "ablation.csv")
    assert runs >= 3
    assert list(pieces.sha256) == list(whole.sha256)
    assert list(pieces.clean) == list(whole.clean)
    # a finished study trains nothing again
    weights = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "models").iterdir()}
    assert _ablation(tmp_path) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "models").iterdir()} == weights


def test_a_changed_setting_is_trained_again_and_the_others_kept(tmp_path, whole):
    assert _ablation(tmp_path) == 0
    kept = (tmp_path / "models" / "stages.safetensors").stat().st_mtime_ns
    argv = ["ablation", "--dataset", "digits", "--subset", "200", "--n", "100", "--base", BASE,
            "--setting", "stages: sigma=0.2", "--setting", "joint: objective=joint epochs=1",
            "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 0
    rows = pd.read_csv(tmp_path / "ablation.csv")
    assert rows.sha256[0] == whole.sha256[0] and rows.sha256[1] != whole.sha256[1]
    assert (tmp_path / "models" / "stages.safetensors").stat().st_mtime_ns == kept


@pytest.mark.parametrize(("setting", "message"), [
    ("sigma=0.1", "is not NAME: KEY=VALUE"),
    ("a: sigmaa=0.1", "setting 'sigmaa' is unknown; allowed: "),
    ("a: sigma=big", "setting sigma='big' is not float"),
])
def test_a_bad_setting_is_one_line_and_writes_nothing(tmp_path, capsys, setting, message):
    out = tmp_path / "out"
    assert main(["ablation", "--dataset", "digits", "--setting", setting, "--out",
                 str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_settings_change_the_recipe_on_the_subset():
    spec = ablation_spec(AblationConfig(dataset="mnist", subset=10_000),
                         typed_overrides({"langevin_steps": "40", "step_size": "0.0025",
                                          "head_hidden": "140,80"}))
    assert spec.model.langevin_steps == 40 and spec.model.step_size == 0.0025
    assert spec.model.head_hidden == (140, 80) and spec.model.sigma == 0.3  # the MNIST recipe
    assert spec.train.labels == spec.train.unlabelled == 10_000
