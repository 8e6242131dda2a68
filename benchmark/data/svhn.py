"""SVHN cropped digits (the thesis's dataset) from its .mat files, resized to 28x28."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.io import loadmat

from robbench.data.dataset import Dataset, missing_files_error
from robbench.data.download import download

SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
SVHN_SIZE = 28  # the thesis resizes SVHN's 32x32 crops to 28x28
SVHN_EXTRA_MAX = 60_000  # extra images appended to the training pool (for M up to ~130k)
SVHN_TEST_PER_CLASS = 100  # the thesis tests on 100 images per class: they come first


def _svhn_dirs(root: Path) -> list[Path]:
    return [root / "svhn", root, root / "SVHN"]


def _locate_svhn(root: Path) -> Path | None:
    for directory in _svhn_dirs(root):
        if all((directory / SVHN_FILES[split]).is_file() for split in ("train", "test")):
            return directory
    return None


def read_svhn_mat(path: Path, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One SVHN cropped-digits .mat file: images in [0, 1] resized to 28x28, labels 0-9."""
    mat = loadmat(str(path))
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path} is not an SVHN .mat file (needs arrays X and y)")
    images, labels = mat["X"], mat["y"].reshape(-1).astype(np.int64)
    if images.ndim != 4 or images.shape[2] != 3 or images.shape[3] != len(labels):
        raise ValueError(f"{path}: X has shape {images.shape}, expected (H, W, 3, {len(labels)})")
    if limit is not None:
        images, labels = images[..., :limit], labels[:limit]
    labels = np.where(labels == 10, 0, labels)  # SVHN writes the digit 0 as label 10
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(3, 2, 0, 1)))
    chunks = [
        resize_to_thesis_size(x[i : i + 4096].float() / 255.0)
        for i in range(0, len(x), 4096)
    ]
    out = torch.cat(chunks) if chunks else torch.empty(0, 3, SVHN_SIZE, SVHN_SIZE)
    return out.clamp_(0.0, 1.0), torch.from_numpy(labels)


def resize_to_thesis_size(x: torch.Tensor) -> torch.Tensor:
    """Antialiased bilinear resize of (N, C, 32, 32) images to 28x28."""
    return torch.nn.functional.interpolate(
        x, size=(SVHN_SIZE, SVHN_SIZE), mode="bilinear", antialias=True, align_corners=False
    )


def load_svhn(root: Path, allow_download: bool = True) -> Dataset:
    """SVHN cropped digits (train + up to SVHN_EXTRA_MAX of extra, test) from ``root``."""
    directory = _locate_svhn(root)
    if directory is None and allow_download:
        try:
            download("svhn", root / "svhn")
        except OSError:
            pass  # reported below as not found
        directory = _locate_svhn(root)
    if directory is None:
        raise missing_files_error(
            "svhn", f"{SVHN_FILES['train']}, {SVHN_FILES['test']}", _svhn_dirs(root))
    x_train, y_train = read_svhn_mat(directory / SVHN_FILES["train"])
    extra = directory / SVHN_FILES["extra"]
    if extra.is_file():
        x_extra, y_extra = read_svhn_mat(extra, limit=SVHN_EXTRA_MAX)
        x_train, y_train = torch.cat([x_train, x_extra]), torch.cat([y_train, y_extra])
    x_test, y_test = read_svhn_mat(directory / SVHN_FILES["test"])
    order = balanced_first(y_test, SVHN_TEST_PER_CLASS)
    return Dataset("svhn", x_train, y_train, x_test[order], y_test[order])


def balanced_first(y: torch.Tensor, per_class: int) -> torch.Tensor:
    """An order of ``y``'s indices with (up to) ``per_class`` of each class first, so that any
    ``--n <= per_class * classes`` takes a class-balanced test set; the rest keep their order."""
    if len(y) == 0:
        return torch.arange(0)
    first = torch.cat([torch.nonzero(y == c).flatten()[:per_class]
                       for c in range(int(y.max()) + 1)]).sort().values
    rest = torch.ones(len(y), dtype=torch.bool)
    rest[first] = False
    return torch.cat([first, torch.nonzero(rest).flatten()])
