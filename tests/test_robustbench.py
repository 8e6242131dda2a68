"""RobustBench as a model source: names, weights-only checkpoints, and (with the extra
installed) a RobustBench architecture evaluated offline from RobustBench's layout."""

from __future__ import annotations

import argparse
import json
from importlib import metadata

import pandas as pd
import pytest
import torch
from conftest import write_cifar

import robbench
from robbench.cli import main
from robbench.models import robustbench_source as rb
from robbench.models.checkpoint_io import CheckpointError
from robbench.models.model_file import display_name


def _installed() -> bool:
    try:
        metadata.version("robustbench")
    except metadata.PackageNotFoundError:
        return False
    return True


needs_robustbench = pytest.mark.skipif(not _installed(), reason="RobustBench is not installed "
                                       "(pip install 'robbench[robustbench]')")


def test_names_are_spelled_out_with_dataset_and_threat_model():
    assert rb.canonical_spec("robustbench:Carmon2019Unlabeled", "cifar10") == \
        "robustbench:cifar10/Linf/Carmon2019Unlabeled"
    assert rb.canonical_spec("robustbench:Rebuffi2021Fixing_70_16_cutmix_extra", "cifar100",
                             "L2") == "robustbench:cifar100/L2/Rebuffi2021Fixing_70_16_cutmix_extra"
    assert rb.canonical_spec("convnet", "cifar10") == "convnet"
    assert display_name("robustbench:cifar10/L2/Standard") == "Standard"


@pytest.mark.parametrize("spec, dataset, message", [
    ("robustbench:cifar10/Linf/Standard", "cifar100", "is a cifar10 model; the dataset is"),
    ("robustbench:Standard", "mnist", "dataset 'mnist' is not supported; allowed: cifar10"),
    ("robustbench:cifar10/Linf2/Standard", "cifar10", "threat model 'Linf2' is unknown"),
    ("robustbench:cifar10/Standard", "cifar10", "is not robustbench:NAME or"),
])
def test_bad_names_are_one_line_errors(spec, dataset, message):
    with pytest.raises(ValueError, match=message):
        rb.parse_robustbench(spec, dataset)


def test_cli_threat_model_choices_and_dataset_mismatch(tmp_path, capsys):
    assert main(["run", "--model", "robustbench:cifar10/L2/Standard", "--dataset", "cifar100",
                 "--quiet", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a cifar10 model; the dataset is 'cifar100'" in err and "\n" not in err
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(_installed(), reason="RobustBench is installed")
def test_without_the_extra_the_error_names_it():
    with pytest.raises(ImportError, match=r"pip install 'robbench\[robustbench\]'"):
        robbench.load_model("robustbench:Standard", "cifar10")


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.register_buffer("mu", torch.full((1, 3, 1, 1), 0.5))

    def forward(self, x):
        return self.conv(x - self.mu).mean((2, 3))


def test_a_checkpoint_that_needs_full_unpickling_is_refused(tmp_path):
    path = tmp_path / "Tiny.pt"
    torch.save({"state_dict": Tiny().state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError, match="needs full unpickling .it holds "
                                              "argparse.Namespace.") as info:
        rb.read_state_dict(path)
    assert "\n" not in str(info.value)


def test_weights_load_strictly_except_buffers_the_file_lacks(tmp_path):
    torch.manual_seed(0)
    source = Tiny()
    path = tmp_path / "Tiny.pt"
    state = {f"module.{k}": v for k, v in source.state_dict().items() if k != "mu"}
    torch.save({"state_dict": state}, path)
    target = Tiny()
    rb.load_weights(target, rb.read_state_dict(path), path)
    assert torch.equal(target.conv.weight, source.conv.weight)
    del state["module.conv.bias"]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="missing conv.bias"):
        rb.load_weights(Tiny(), rb.read_state_dict(path), path)


@pytest.fixture
def tiny_zoo(tmp_path, monkeypatch):
    """A small RobustBench architecture (its WideResNet at depth 10, width 1) registered in
    RobustBench's cifar10 Linf table, with random weights at the path RobustBench expects;
    downloading fails the test."""
    dicts = rb._model_dicts()  # first: it imports the zoo without RobustBench's __init__
    from robustbench.model_zoo.architectures.wide_resnet import WideResNet
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
    table = dicts[BenchmarkDataset.cifar_10][ThreatModel.Linf]
    monkeypatch.setitem(table, "TinyWRN", {"model": lambda: WideResNet(depth=10, widen_factor=1),
                                           "gdrive_id": "never-fetched"})
    monkeypatch.setenv(rb.DIR_ENV, str(tmp_path / "models"))
    monkeypatch.setattr(rb, "_download", lambda entry, path: pytest.fail("downloaded"))
    torch.manual_seed(0)
    reference = WideResNet(depth=10, widen_factor=1).eval()
    path = tmp_path / "models" / "cifar10" / "Linf" / "TinyWRN.pt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}},
               path)
    return reference


@needs_robustbench
def test_a_robustbench_architecture_evaluates_offline_from_its_layout(tmp_path, tiny_zoo):
    model = robbench.load_model("robustbench:TinyWRN", "cifar10")
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        # The same architecture and weights on the same inputs and code path.
        torch.testing.assert_close(model(x), tiny_zoo(x), rtol=1e-5, atol=1e-6)
    write_cifar(tmp_path / "data" / "cifar10", "cifar10", "binary")
    out = tmp_path / "runs"
    assert main(["run", "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"),
                 "--model", "robustbench:TinyWRN", "--attack", "pgd", "--steps", "1",
                 "--eps", "0.031", "--quiet", "--out", str(out)]) == 0
    (run_dir,) = list(out.iterdir())
    summary = pd.read_csv(run_dir / "summary.csv")
    assert set(summary.model) == {"TinyWRN"} and (summary.n == 4).all()
    meta = json.loads((run_dir / "config.json").read_text())
    assert meta["config"]["models"] == ["robustbench:cifar10/Linf/TinyWRN"]
    assert meta["checkpoints"]["TinyWRN"]["name"] == "TinyWRN.pt"


@needs_robustbench
def test_a_missing_checkpoint_is_fetched_through_robustbench_or_one_line(tmp_path, monkeypatch):
    rb._model_dicts()
    import robustbench.utils

    def offline(gdrive_id, fname_save):
        open(fname_save, "wb").write(b"half")  # a partial file must not be left behind
        raise ConnectionError(f"no network for {gdrive_id}\nsecond line")
    monkeypatch.setattr(robustbench.utils, "download_gdrive_new", offline)
    monkeypatch.setenv(rb.DIR_ENV, str(tmp_path))
    entry = rb.zoo_entry(rb.parse_robustbench("robustbench:Carmon2019Unlabeled", "cifar10"))
    assert callable(entry["model"])
    with pytest.raises(FileNotFoundError, match="could not be downloaded .no network") as info:
        robbench.load_model("robustbench:Carmon2019Unlabeled", "cifar10")
    assert "\n" not in str(info.value)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []
