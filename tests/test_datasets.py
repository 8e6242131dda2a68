"""Datasets: the embedded digits split and the IDX reader on local files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from robbench.data import dataset as dataset_module
from robbench.data import download as download_module
from robbench.data.datasets import DataNotFoundError, load_dataset
from robbench.data.idx import candidate_dirs, load_idx_dataset, read_idx


def test_digits_split_is_fixed_and_scaled(digits):
    assert digits.x_train.shape == (1400, 1, 8, 8) and digits.x_test.shape == (397, 1, 8, 8)
    assert digits.x_train.min() >= 0 and digits.x_train.max() <= 1
    again = load_dataset("digits")
    assert (again.y_test == digits.y_test).all()


def _write_idx(path, array, gz):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _fake_mnist(directory, gz):
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(directory / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), gz)
        _write_idx(directory / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n), gz)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_are_read_gzipped_or_not(tmp_path, gz):
    _fake_mnist(tmp_path / "mnist", gz)
    data = load_idx_dataset("mnist", tmp_path, allow_download=False)
    assert data.x_train.shape == (12, 1, 28, 28) and data.x_test.shape == (5, 1, 28, 28)
    assert 0 <= data.x_train.min() and data.x_train.max() <= 1


def test_torchvision_layout_is_found(tmp_path):
    _fake_mnist(tmp_path / "FashionMNIST" / "raw", gz=True)
    assert len(load_idx_dataset("fashion-mnist", tmp_path, allow_download=False).y_test) == 5


def test_missing_files_name_the_directories_searched(tmp_path):
    with pytest.raises(DataNotFoundError, match=str(tmp_path)) as info:
        load_idx_dataset("mnist", tmp_path, allow_download=False)
    assert "--data-dir" in str(info.value) and "\n" not in str(info.value)


def test_truncated_idx_is_refused(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1]) + (100).to_bytes(4, "big") + b"\x00" * 10)
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)


def test_unknown_dataset_is_rejected():
    with pytest.raises(ValueError, match="allowed: digits"):
        load_dataset("imagenet")


def test_fashion_mnist_is_found_where_the_debian_package_installs_it(tmp_path, monkeypatch):
    system = tmp_path / "usr-share-datasets-fashion-mnist"
    _fake_mnist(system, gz=True)
    monkeypatch.setitem(dataset_module.SYSTEM_DIRS, "fashion-mnist", (system,))
    monkeypatch.setattr("robbench.data.idx.SYSTEM_DIRS", dataset_module.SYSTEM_DIRS)
    empty = tmp_path / "data"
    assert candidate_dirs("fashion-mnist", empty)[-1] == system
    assert len(load_idx_dataset("fashion-mnist", empty, allow_download=False).y_train) == 12


def test_missing_fashion_mnist_names_the_apt_package(tmp_path, monkeypatch):
    monkeypatch.setattr("robbench.data.idx.SYSTEM_DIRS", {"fashion-mnist": (tmp_path / "no",)})
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_idx_dataset("fashion-mnist", tmp_path, allow_download=False)


def test_download_checks_each_file_against_its_md5(tmp_path, monkeypatch):
    """The standard-library fallback: files fetched from a mirror (here a file:// one) are kept
    only with the right MD5, and a wrong one leaves nothing behind."""
    mirror = tmp_path / "mirror"
    _fake_mnist(mirror, gz=True)
    sums = {p.name: download_module.md5_file(p) for p in mirror.iterdir()}
    monkeypatch.setitem(download_module.MIRRORS, "mnist", (mirror.as_uri() + "/",))
    monkeypatch.setitem(download_module.FILES, "mnist", sums)
    data = load_idx_dataset("mnist", tmp_path / "data")
    assert len(data.y_test) == 5 and (tmp_path / "data" / "mnist").is_dir()
    bad = {**sums, "t10k-labels-idx1-ubyte.gz": "0" * 32}
    monkeypatch.setitem(download_module.FILES, "mnist", bad)
    with pytest.raises(DataNotFoundError):
        load_idx_dataset("mnist", tmp_path / "other")
    assert not (tmp_path / "other" / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list((tmp_path / "other").rglob("*.part"))
