"""CIFAR-10/100 readers on tiny synthetic files written in both official formats."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pandas as pd
import pytest
from conftest import CIFAR_SIZES, write_cifar

from robbench.cli import main
from robbench.data import cifar_formats
from robbench.data import download as download_module
from robbench.data.cifar import TRUST_ENV, load_cifar
from robbench.data.cifar_formats import CIFAR, UnverifiedFileError, read_python_batch
from robbench.data.datasets import DataNotFoundError, load_dataset

FORMATS = ("binary", "python", "binary-tar", "python-tar")


def _expected(batches, name, split):
    stems = CIFAR[name].py_files[split]
    x = np.concatenate([batches[s][0] for s in stems]).astype(np.float32) / 255.0
    return x, np.concatenate([batches[s][1] for s in stems])


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_official_format_reads_the_images_and_labels_written(tmp_path, name, fmt):
    batches, md5 = write_cifar(tmp_path / name, name, fmt)
    data = load_dataset(name, tmp_path, download=False, trusted_md5=md5)
    shards = len(CIFAR[name].py_files["train"])
    assert data.x_train.shape == (CIFAR_SIZES["train"] * shards, 3, 32, 32)
    assert data.classes == CIFAR[name].classes
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        want_x, want_y = _expected(batches, name, split)
        assert np.array_equal(x.numpy(), want_x) and np.array_equal(y.numpy(), want_y)


def test_the_root_itself_and_the_trust_variable_are_searched(tmp_path, monkeypatch):
    _, md5 = write_cifar(tmp_path, "cifar10", "python")
    monkeypatch.setenv(TRUST_ENV, ",".join(f"{k}={v}" for k, v in md5.items()))
    assert len(load_cifar("cifar10", tmp_path, allow_download=False).y_test) == 4


@pytest.mark.parametrize("fmt", ["python", "python-tar"])
def test_a_pickle_with_an_unpublished_md5_is_never_unpickled(tmp_path, monkeypatch, fmt):
    write_cifar(tmp_path / "cifar10", "cifar10", fmt)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    loads = []
    monkeypatch.setattr(cifar_formats._ArrayUnpickler, "load", lambda self: loads.append(1))
    with pytest.raises(UnverifiedFileError, match="not the published") as info:
        load_dataset("cifar10", tmp_path, download=False)
    assert "\n" not in str(info.value) and not loads


def test_a_trusted_md5_is_per_file(tmp_path):
    _, md5 = write_cifar(tmp_path / "cifar10", "cifar10", "python")
    wrong = {**md5, "test_batch": md5["data_batch_1"]}
    with pytest.raises(UnverifiedFileError, match="test_batch"):
        load_dataset("cifar10", tmp_path, download=False, trusted_md5=wrong)


def test_a_verified_pickle_may_hold_only_arrays(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("ran",))
    blob = pickle.dumps({b"data": Evil(), b"labels": []})
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        read_python_batch(blob, CIFAR["cifar10"], "test_batch",
                          {"test_batch": hashlib.md5(blob).hexdigest()})


def test_a_truncated_binary_batch_is_refused(tmp_path):
    write_cifar(tmp_path / "cifar10", "cifar10", "binary")
    path = tmp_path / "cifar10" / "cifar-10-batches-bin" / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match="test_batch.bin: .* not a whole number"):
        load_dataset("cifar10", tmp_path, download=False)


def _offline(name, directory):
    raise OSError("no network")


def test_missing_cifar_names_every_directory_searched(tmp_path, monkeypatch):
    monkeypatch.setattr("robbench.data.cifar.download", _offline)
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("cifar100", tmp_path)
    message = str(info.value)
    assert f"not found in {tmp_path / 'cifar100'}, {tmp_path} and" in message
    assert "cifar-100-binary.tar.gz" in message and "\n" not in message


def test_the_download_is_the_binary_tarball_with_its_published_md5():
    for name in ("cifar10", "cifar100"):
        (tarball, md5), = download_module.FILES[name].items()
        assert tarball == CIFAR[name].bin_tarball and len(md5) == 32
        assert download_module.MIRRORS[name] == ("https://www.cs.toronto.edu/~kriz/",)


LINEAR_MODEL = '''
import torch

def build(dataset="cifar10"):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
'''


@pytest.mark.parametrize("fmt", FORMATS)
def test_robbench_run_attacks_a_file_model_on_synthetic_cifar10(tmp_path, monkeypatch, fmt):
    _, md5 = write_cifar(tmp_path / "data", "cifar10", fmt)
    monkeypatch.setenv(TRUST_ENV, ",".join(f"{k}={v}" for k, v in md5.items()))
    (tmp_path / "linear.py").write_text(LINEAR_MODEL)
    out = tmp_path / "runs"
    assert main(["run", "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"),
                 "--model", f"{tmp_path / 'linear.py'}:build", "--attack", "pgd", "--steps",
                 "2", "--eps", "0.03", "--quiet", "--out", str(out)]) == 0
    (run_dir,) = list(out.iterdir())
    summary = pd.read_csv(run_dir / "summary.csv")
    assert set(summary.attack) == {"none", "pgd"} and (summary.n == 4).all()
    assert (summary.dataset == "cifar10").all()


def test_robbench_run_on_a_missing_cifar_directory_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("robbench.data.cifar.download", _offline)
    (tmp_path / "linear.py").write_text(LINEAR_MODEL)
    out = tmp_path / "runs"
    assert main(["run", "--dataset", "cifar10", "--data-dir", str(tmp_path / "nowhere"),
                 "--model", f"{tmp_path / 'linear.py'}:build", "--quiet",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robbench: error: cifar10 files") and "\n" not in err
    assert str(tmp_path / "nowhere" / "cifar10") in err and not out.exists()


@pytest.mark.parametrize("value", ["test_batch", "test_batch=xyz", "test_batch=" + "g" * 32])
def test_a_malformed_trust_variable_is_one_line(tmp_path, monkeypatch, value):
    write_cifar(tmp_path / "cifar10", "cifar10", "python")
    monkeypatch.setenv(TRUST_ENV, value)
    with pytest.raises(ValueError, match="is not NAME=MD5"):
        load_cifar("cifar10", tmp_path, allow_download=False)
