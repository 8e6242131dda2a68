"""Several Langevin chains per input: every combination mode, and `robbench chains`."""

from __future__ import annotations

import pandas as pd
import pytest

from robbench.cli import main
from robbench.studies.chains import chain_accuracy


def test_one_chain_is_the_same_for_every_combination(shipped_shortrun, digits):
    x, y = digits.x_test[:60], digits.y_test[:60]
    frame = chain_accuracy(shipped_shortrun, x, y, [1, 3], seed=2)
    one = frame[frame.chains == 1]
    assert one.accuracy.nunique() == 1  # with one chain mean z, mean logits and vote agree
    assert set(frame["combine"]) == {"mean_logits", "mean_z", "vote"}
    assert (frame.ci_low <= frame.accuracy).all() and (frame.accuracy <= frame.ci_high).all()


def test_chains_command_writes_the_table(tmp_path, capsys):
    assert main(["chains", "--chains", "1,2", "--n", "40", "--out", str(tmp_path),
                 "--quiet"]) == 0
    frame = pd.read_csv(tmp_path / "chains.csv")
    assert frame.model.tolist() == ["convnet"] + ["shortrun"] * 6
    assert "robbench chains --chains 1,2" in (tmp_path / "chains.md").read_text()


def test_bad_chain_counts_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["chains", "--chains", "0", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "'0' must be integers >= 1" in capsys.readouterr().err
    assert main(["chains", "--chains", "", "--out", str(tmp_path)]) == 2
    assert "chains '' is empty" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
