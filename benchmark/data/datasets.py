"""Datasets by name: the embedded ``digits``, IDX files (MNIST, Fashion-MNIST), SVHN, CIFAR.

Files are read from a data directory (``--data-dir`` / ``ROBBENCH_DATA``), then from where
system packages install them (Debian's ``dataset-fashion-mnist``), and fetched from the
official mirrors only when none of those holds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits as sklearn_digits
from sklearn.model_selection import train_test_split

from robbench.data.cifar import load_cifar
from robbench.data.cifar_formats import CIFAR
from robbench.data.dataset import DataNotFoundError, Dataset, default_data_dir
from robbench.data.idx import load_idx_dataset
from robbench.data.svhn import load_svhn

DATASETS = ("digits", "mnist", "fashion-mnist", "svhn", "cifar10", "cifar100")
DIGITS_TEST_SIZE = 397
DIGITS_SPLIT_SEED = 0

__all__ = ["DATASETS", "DataNotFoundError", "Dataset", "load_dataset", "load_digits"]


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = True,
                 trusted_md5: Mapping[str, str] | None = None) -> Dataset:
    """Load a dataset by name; files come from ``data_dir`` (or ROBBENCH_DATA) when needed.

    ``trusted_md5`` ({file name: MD5}) names pickled CIFAR files of your own that may be read
    besides the published ones (see :func:`robbench.data.cifar.load_cifar`)."""
    if name not in DATASETS:
        raise ValueError(f"dataset {name!r} is unknown; allowed: {', '.join(DATASETS)}")
    if name == "digits":
        return load_digits()
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if name == "svhn":
        return load_svhn(root, allow_download=download)
    if name in CIFAR:
        return load_cifar(name, root, allow_download=download, trusted_md5=trusted_md5)
    return load_idx_dataset(name, root, allow_download=download)


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits, scaled to [0, 1], fixed stratified split 1400/397."""
    bunch = sklearn_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=DIGITS_TEST_SIZE, random_state=DIGITS_SPLIT_SEED, stratify=y
    )
    return Dataset("digits", torch.from_numpy(x_tr), torch.from_numpy(y_tr),
                   torch.from_numpy(x_te), torch.from_numpy(y_te))
