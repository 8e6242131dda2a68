"""MNIST and Fashion-MNIST from their IDX files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from robbench.data.dataset import SYSTEM_DIRS, Dataset, missing_files_error
from robbench.data.download import download

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_TORCHVISION_DIRS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def candidate_dirs(name: str, root: Path) -> list[Path]:
    """The directories searched for ``name``'s IDX files, in order."""
    tv = _TORCHVISION_DIRS.get(name)
    own = [root / name, root] + ([root / tv / "raw", root / name / tv / "raw"] if tv else [])
    return own + list(SYSTEM_DIRS.get(name, ()))


def _find_idx(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: {array.size} values for shape {dims}")
    return array.reshape(dims)


def _locate(name: str, root: Path) -> Path | None:
    for directory in candidate_dirs(name, root):
        if all(_find_idx(directory, s) for pair in IDX_FILES.values() for s in pair):
            return directory
    return None


def load_idx_dataset(name: str, root: Path, allow_download: bool = True) -> Dataset:
    """MNIST or Fashion-MNIST from IDX files, downloading them into ``root/name`` if allowed."""
    directory = _locate(name, root)
    if directory is None and allow_download:
        try:
            download(name, root / name)
        except OSError:
            pass  # reported below as not found
        directory = _locate(name, root)
    if directory is None:
        raise missing_files_error(name, "train-images-idx3-ubyte[.gz] etc.",
                                  candidate_dirs(name, root))
    arrays = {}
    for split, (images, labels) in IDX_FILES.items():
        x = read_idx(_find_idx(directory, images)).astype(np.float32) / 255.0
        y = read_idx(_find_idx(directory, labels)).astype(np.int64)
        arrays[split] = (torch.from_numpy(x[:, None]), torch.from_numpy(y))
    return Dataset(name, *arrays["train"], *arrays["test"])
