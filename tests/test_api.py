"""robbench as a library: evaluate any model (randomness detected, never assumed), models from
files and installed packages, the same numbers as `robbench run`."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_in

import robbench
from robbench.cli import main
from robbench.models import zoo
from robbench.records.store import DirectoryStore
from robbench.runs.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "noisy_model.py"


class NoiseOnInput(torch.nn.Module):
    """Adds Gaussian noise to its input and declares nothing about it."""

    def __init__(self, stochastic_attribute: bool | None = None) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(64, 10)
        if stochastic_attribute is not None:
            self.stochastic = stochastic_attribute

    def forward(self, x):
        return self.linear((x + 0.2 * torch.randn_like(x)).flatten(1))


class ParameterFree(torch.nn.Module):
    """No parameters at all: the brightest of ten bands of rows decides the class."""

    def forward(self, x):
        return x.flatten(1)[:, :60].reshape(len(x), 10, 6).mean(2) * 10


@pytest.fixture(scope="module")
def noisy_report():
    torch.manual_seed(0)
    return robbench.evaluate({"noisy": NoiseOnInput()}, dataset="digits", n=12,
                             attacks=["eot-pgd"], eps=[0.1], eot=3, progress=False)


def test_a_model_that_adds_noise_is_detected_and_gets_eot_and_draws(noisy_report):
    row = noisy_report.summary.set_index("attack").loc["eot-pgd"]
    assert bool(row["stochastic"]) and row["eot"] == 3 and row["draws"] == 10
    assert row["selection_draws"] == 10
    table = noisy_report.to_markdown()
    assert "noisy majority" in table and "noisy all-draws" in table
    assert noisy_report.outcomes("noisy", "eot-pgd", 0.1)["sel_pred"].shape == (10, 12)


def test_forcing_stochastic_false_on_a_random_model_warns_and_is_not_obeyed(tmp_path, capsys):
    for model, forced in ((NoiseOnInput(), False), (NoiseOnInput(stochastic_attribute=False),
                                                     "auto")):
        out = tmp_path / f"run-{forced}"
        report = robbench.evaluate({"noisy": model}, dataset="digits", n=6, attacks=["fgsm"],
                                   eps=[0.1], stochastic=forced, out=out, progress=False)
        assert bool(report.summary["stochastic"].all())
        meta = json.loads((out / "runs" / "fgsm" / "config.json").read_text())
        assert meta["models"]["noisy"]["detected"] is True
        assert "is random, and is evaluated as stochastic" in meta["warnings"][0]
        assert "robbench: warning: model 'noisy'" in capsys.readouterr().err


def test_a_deterministic_model_is_attacked_once_and_scored_once():
    report = robbench.evaluate({"free": ParameterFree()}, dataset="digits", n=10,
                               attacks=["pgd"], eps=[0.1], progress=False)
    row = report.summary.set_index("attack").loc["pgd"]
    assert not bool(row["stochastic"]) and row["draws"] == 1 and row["eot"] == 1
    assert "free majority" not in report.to_markdown()


def test_evaluate_without_out_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    robbench.evaluate(ParameterFree(), dataset="digits", n=4, attacks=["fgsm"], eps=[0.1],
                      progress=False)
    assert list(tmp_path.iterdir()) == []


def test_evaluate_gives_robbench_runs_outcomes_byte_for_byte(tmp_path, shipped_convnet,
                                                             shipped_shortrun):
    config = RunConfig(models=["convnet", "shortrun"], attacks=["pgd"], eps=[0.1], n=20,
                       params={"steps": 2})
    run_dir, _ = run_in(config, tmp_path / "cli")
    report = robbench.evaluate({"convnet": shipped_convnet, "shortrun": shipped_shortrun},
                               dataset="digits", n=20, attacks=["pgd"], eps=[0.1],
                               params={"steps": 2}, progress=False)
    cli = DirectoryStore(run_dir)
    assert len(cli.done()) == 4
    for key in cli.done():
        mine, theirs = report.runs[0].outcomes(key), cli.outcomes(key)
        assert sorted(mine) == sorted(theirs), key
        for name in mine:
            assert np.array_equal(mine[name], theirs[name]), (key, name)


def test_a_model_file_runs_through_run_table_and_diagnose(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["run", "--model", f"{EXAMPLE}:build=noisy", "--dataset", "digits",
                 "--attack", "eot-pgd", "--n", "8", "--steps", "2", "--eot", "2",
                 "--out", str(out), "--quiet"]) == 0
    assert "noisy all-draws" in capsys.readouterr().out
    (run_dir,) = out.iterdir()
    assert main(["table", str(run_dir)]) == 0
    assert "noisy majority" in capsys.readouterr().out
    meta = json.loads((run_dir / "config.json").read_text())
    assert meta["checkpoints"]["noisy"]["name"] == "noisy_model.py:build"
    assert str(tmp_path) not in json.dumps(meta["checkpoints"])  # no machine's path
    assert main(["diagnose", "--model", f"{EXAMPLE}:build=noisy", "--quick", "--n", "6",
                 "--out", str(tmp_path / "diag"), "--quiet", "--device", "cpu"]) == 0
    assert "gradient not vanishing" in capsys.readouterr().out


def test_a_file_model_loads_its_checkpoint_and_a_parameter_free_one_needs_none(tmp_path):
    from safetensors.torch import save_file

    from robbench.models.model_file import load_model_file

    source = tmp_path / "models.py"
    source.write_text(textwrap.dedent('''
        import torch

        def linear():
            return torch.nn.Linear(64, 10)

        def free(dataset):
            return torch.nn.Flatten()
    '''))
    weights = tmp_path / "w.safetensors"
    save_file({"weight": torch.ones(10, 64), "bias": torch.zeros(10)}, str(weights))
    loaded = load_model_file(f"{source}:linear", "digits", checkpoint=weights)
    assert torch.equal(loaded.module.weight, torch.ones(10, 64))
    assert loaded.checkpoint["name"] == "w.safetensors"
    free = load_model_file(f"{source}:free=flat", "digits")
    assert free.name == "flat" and len(free.sha256) == 64
    save_file({"weight": torch.ones(3, 3)}, str(weights))
    with pytest.raises(ValueError, match="does not fit linear"):
        load_model_file(f"{source}:linear", "digits", checkpoint=weights)


def test_an_installed_package_registers_a_model_name(tmp_path, monkeypatch):
    """A fake distribution on sys.path with an entry point in the group robbench.models."""
    (tmp_path / "fakezoo.py").write_text(
        "import torch\n\ndef tiny(dataset):\n    return torch.nn.Sequential(torch.nn.Flatten(),"
        " torch.nn.Linear(64, 10))\n")
    dist = tmp_path / "fakezoo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakezoo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[robbench.models]\nfaketiny = fakezoo:tiny\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "faketiny" in zoo.model_names()
    loaded = zoo.load_named_model("faketiny", "digits")
    assert loaded.source == "entry point fakezoo:tiny"
    assert isinstance(loaded.module, torch.nn.Sequential)


def test_register_model_in_code(monkeypatch):
    monkeypatch.setattr(zoo, "_REGISTERED", {})
    robbench.register_model("free", lambda dataset: ParameterFree())
    assert "free" in zoo.model_names()
    with pytest.raises(ValueError, match="built in"):
        robbench.register_model("convnet", lambda dataset: ParameterFree())


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    """The README's "Evaluate your own model" code block, executed verbatim."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## Evaluate your own model")
    block = text[text.index("```python", start) + len("```python"):]
    block = block[: block.index("```")]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README's code
    report = namespace["report"]
    rows = report.summary.set_index(["model", "attack", "eps"])
    noisy = rows.xs("noisy", level="model")
    assert noisy["stochastic"].all() and (noisy["draws"] == 10).all()
    assert (noisy.loc["eot-pgd", "eot"] > 1).all()


def test_load_model_and_dataset_give_the_zoo():
    model = robbench.load_model("convnet", "digits")
    assert isinstance(model, torch.nn.Module)
    assert len(robbench.load_dataset("digits").y_test) == 397
    assert os.environ.get("ROBBENCH_CACHE")  # tests never touch the user's cache
    assert sys.modules["robbench"].__version__ == robbench.__version__
