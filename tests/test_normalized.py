"""robbench.Normalized and --normalize: eps stays in [0, 1] pixel units, the record says so."""

from __future__ import annotations

import json

import pytest
import torch

import robbench
from robbench.cli import main
from robbench.models.normalized import Normalized, parse_normalize

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2471, 0.2435, 0.2616]

MODEL_FILE = '''
import torch

def build(dataset="digits"):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
'''


class WithHooks(torch.nn.Module):
    stochastic = True

    def forward(self, x):
        return x.flatten(1)[:, :10]

    def embed(self, x):
        return x.flatten(1)


def test_the_model_sees_standardised_inputs_and_gradients_are_in_pixel_units():
    inner = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 10))
    wrapped = Normalized(inner, MEAN, STD)
    x = torch.rand(5, 3, 2, 2, requires_grad=True)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    z = ((x - mean) / std).detach().requires_grad_()
    # The same float32 ops on the same values: equal up to rounding.
    torch.testing.assert_close(wrapped(x), inner(z), rtol=1e-6, atol=1e-6)
    wrapped(x).sum().backward()
    (grad_z,) = torch.autograd.grad(inner(z).sum(), z)
    # Chain rule: a pixel-unit step moves the standardised input by 1/std.
    torch.testing.assert_close(x.grad, grad_z / std, rtol=1e-5, atol=1e-6)


def test_hooks_and_the_stochastic_flag_pass_through():
    wrapped = Normalized(WithHooks(), 0.5, 0.25)
    assert wrapped.stochastic is True
    x = torch.full((2, 1, 4, 4), 0.75)
    assert torch.equal(wrapped.embed(x), torch.ones(2, 16))  # (0.75 - 0.5) / 0.25
    assert not hasattr(Normalized(torch.nn.Identity(), 0.5, 0.25), "embed")


@pytest.mark.parametrize("text, message", [
    ("0.5", "is not MEAN/STD"),
    ("a/b", "is not MEAN/STD"),
    ("0.5/0", "must be positive"),
    ("0.1,0.2,0.3/0.1,0.2", "mean has 3 values and std 2"),
])
def test_bad_statistics_are_one_line_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_normalize(text)


def test_parse_normalize_reads_per_channel_values():
    assert parse_normalize("0.4914,0.4822,0.4465/0.2471,0.2435,0.2616") == (MEAN, STD)


def test_evaluate_records_the_normalisation(tmp_path, digits):
    torch.manual_seed(0)
    model = Normalized(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)),
                       0.5, 0.5)
    robbench.evaluate(model, digits.x_test[:6], digits.y_test[:6], attacks=["fgsm"],
                      eps=[0.1], out=tmp_path, progress=False)
    meta = json.loads((tmp_path / "runs" / "fgsm" / "config.json").read_text())
    assert meta["models"]["Normalized"]["input_normalization"] == {"mean": [0.5], "std": [0.5]}


def test_cli_normalize_wraps_a_file_model_and_records_it(tmp_path):
    (tmp_path / "m.py").write_text(MODEL_FILE)
    out = tmp_path / "runs"
    assert main(["run", "--model", f"{tmp_path / 'm.py'}:build", "--normalize", "0.5/0.25",
                 "--attack", "fgsm", "--eps", "0.1", "--n", "6", "--quiet",
                 "--out", str(out)]) == 0
    (run_dir,) = list(out.iterdir())
    meta = json.loads((run_dir / "config.json").read_text())
    assert meta["models"]["build"]["input_normalization"] == {"mean": [0.5], "std": [0.25]}
    assert "normalised by mean [0.5] and std [0.25]" in meta["models"]["build"]["source"]


def test_cli_normalize_must_name_a_file_model(tmp_path, capsys):
    assert main(["run", "--model", "convnet", "--normalize", "other=0.5/0.25", "--n", "4",
                 "--quiet", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--normalize names model 'other'" in err and "\n" not in err
