"""A model that breaks robbench's contract gets a one-line error naming it, never a number:
wrong logit shape, non-finite logits (on the first pass or later, on adversarial inputs), or an
exception of its own (reported above its own traceback, the run left resumable)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import robbench
from robbench.cli import main
from robbench.records.store import DirectoryStore
from robbench.runs.batches import default_batch_size
from robbench.runs.model_contract import ModelContractError, ModelRaised, contract_violation

BROKEN_MODELS = textwrap.dedent('''
    import torch

    class Linear(torch.nn.Module):
        def __init__(self, out=10):
            super().__init__()
            self.linear = torch.nn.Linear(64, out)

        def forward(self, x):
            return self.linear(x.flatten(1))

    class NaNs(Linear):
        def forward(self, x):
            return super().forward(x) * float("nan")

    class Raises(Linear):
        def forward(self, x):
            raise RuntimeError("the model's own bug")

    def wrong_shape(dataset="digits"):
        return Linear(3)

    def nans(dataset="digits"):
        return NaNs()

    def raises(dataset="digits"):
        return Raises()
''')


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "broken.py"
    path.write_text(BROKEN_MODELS)
    return path


@pytest.mark.parametrize("function, words", [
    ("wrong_shape", "returned logits of shape (16, 3); required: finite floating logits of "
                    "shape (16, 10)"),
    ("nans", "returned non-finite logits (NaN or inf) for 16 of 16 inputs"),
    ("raises", "raised RuntimeError during randomness detection"),
])
def test_a_broken_model_is_one_line_exit_1_and_leaves_no_run(function, words, model_file,
                                                             tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(["run", "--model", f"{model_file}:{function}", "--attack", "pgd", "--n", "20",
                 "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert code == 1
    assert first.startswith(f"robbench: error: model '{function}' ") and words in first
    assert not out.exists()  # no run directory, no cell, no summary
    if function == "raises":  # the model's own traceback follows the line, its frames only
        assert f'File "{model_file}"' in err and "RuntimeError: the model's own bug" in err
        assert "robbench/runs" not in err.replace("\\", "/")


class Flaky(torch.nn.Module):
    """A deterministic linear model that fails (raises, or returns NaN logits) from its pass
    ``after + 1`` on, once ``fail`` is set."""

    def __init__(self, fail: str | None = None, after: int = 0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(64, 10)
        self.fail, self.after, self.passes = fail, after, 0

    def forward(self, x):
        self.passes += 1
        failing = self.fail is not None and self.passes > self.after
        if failing and self.fail == "raise":
            raise ValueError("out of order")
        logits = self.linear(x.flatten(1))
        return logits * float("nan") if failing else logits


def _evaluate(model, digits, out):
    """60 images in batches of 20: detection (2 passes), the clean cell (3), then PGD."""
    return robbench.evaluate({"flaky": model}, digits.x_test[:60], digits.y_test[:60],
                             attacks=["pgd"], eps=[0.1], out=out, progress=False,
                             batch_size=20, params={"steps": 3})


def test_an_exception_mid_run_names_the_model_and_the_run_resumes(digits, tmp_path):
    healthy = Flaky()
    reference = _evaluate(healthy, digits, tmp_path / "reference")
    per_batch = (healthy.passes - 5) // 3
    model = Flaky("raise", after=5 + per_batch)  # the second batch of the attack raises
    with pytest.raises(ModelRaised, match=r"model 'flaky' raised ValueError during attack pgd"):
        _evaluate(model, digits, tmp_path / "stopped")
    store = DirectoryStore(tmp_path / "stopped" / "runs" / "pgd")
    assert store.done() == {"flaky__none__0"} and sorted(store.batches("flaky__pgd")) == [0]
    resumed = _evaluate(Flaky(), digits, tmp_path / "stopped")
    assert resumed.summary.drop(columns="seconds").equals(
        reference.summary.drop(columns="seconds"))


def test_non_finite_logits_on_adversarial_inputs_stop_the_cell(digits, tmp_path):
    model = Flaky("nan", after=5)  # healthy through detection and the clean cell
    with pytest.raises(ModelContractError,
                       match=r"model 'flaky' returned non-finite logits \(NaN or inf\) for 20 "
                             r"of 20 inputs.*during attack pgd"):
        _evaluate(model, digits, tmp_path)
    store = DirectoryStore(tmp_path / "runs" / "pgd")
    assert store.done() == {"flaky__none__0"}  # no score for the attack


def test_the_contract_names_what_is_wrong():
    ok = torch.zeros(4, 10)
    assert contract_violation(ok, 4, 10) is None
    assert "not a tensor" in contract_violation((ok,), 4, 10)
    assert "torch.int64 logits" in contract_violation(ok.long(), 4, 10)
    assert "shape (4,)" in contract_violation(ok[:, 0], 4, 10)
    assert "shape (3, 10)" in contract_violation(ok[:3], 4, 10)
    assert "meta device" in contract_violation(torch.empty(4, 10, device="meta"), 4, 10)
    inf = ok.clone()
    inf[1, 2] = float("inf")
    assert "for 1 of 4 inputs" in contract_violation(inf, 4, 10)
    assert contract_violation(torch.zeros(4, 7), 4, None, at_least=5) is None
    assert "C >= 5" in contract_violation(torch.zeros(4, 3), 4, None, at_least=5)


def test_images_given_as_tensors_take_the_width_of_the_logits(digits):
    x, y = digits.x_test[:12], digits.y_test[:12].clamp(max=4)  # labels 0-4 only
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    report = robbench.evaluate(model, x, y, attacks=["fgsm"], eps=[0.1], progress=False)
    assert len(report.summary) == 2
    narrow = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    with pytest.raises(ModelContractError, match=r"shape \(12, 3\).*C >= 5"):
        robbench.evaluate(narrow, x, y, attacks=["fgsm"], eps=[0.1], progress=False)


def test_the_default_batch_lets_eight_processes_share_a_small_run():
    assert [default_batch_size(n) for n in (1, 10, 50, 200, 397, 400, 1000, 4000, 10000)] == [
        1, 10, 25, 25, 50, 50, 125, 500, 500]
    for n in (200, 400, 1000, 4000):
        assert -(-n // default_batch_size(n)) >= 8  # every one of 8 ranks gets a batch


def test_a_resumed_run_keeps_its_batch_size(digits, tmp_path):
    x, y = digits.x_test[:60], digits.y_test[:60]
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    robbench.evaluate(model, x, y, attacks=["fgsm"], eps=[0.1], out=tmp_path, progress=False,
                      batch_size=30)
    meta = DirectoryStore(tmp_path / "runs" / "fgsm").read_meta()
    assert meta["batch_size"] == 30
    robbench.evaluate(model, x, y, attacks=["fgsm"], eps=[0.1], out=tmp_path / "default",
                      progress=False)
    meta = DirectoryStore(tmp_path / "default" / "runs" / "fgsm").read_meta()
    assert meta["batch_size"] == default_batch_size(60) == 25
    outcomes = np.load(tmp_path / "default" / "runs" / "fgsm" / "cells" /
                       "Sequential__fgsm__0.1.npz")
    assert outcomes["pred"].shape == (1, 60)
