"""The two official CIFAR-10/100 file formats (Krizhevsky 2009), read from bytes.

The binary version is fixed-size records (label byte(s), then 3,072 pixel bytes) and is read
without any unpickling. The Python version is pickles: a file is unpickled only after its MD5
matches the published one (or one the caller explicitly trusts), and then by an unpickler
that builds nothing but the numpy arrays, lists and dicts those files hold.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

PIXELS = 3 * 32 * 32


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR dataset's files are and how their labels are stored."""

    classes: int
    bin_dir: str  # the binary tarball's folder
    py_dir: str  # the Python tarball's folder
    bin_files: dict[str, tuple[str, ...]]  # split -> binary batch files
    py_files: dict[str, tuple[str, ...]]  # split -> pickled batch files
    label_bytes: int  # bytes before the pixels of a binary record; the last is the label
    label_key: bytes  # the pickled dict's key of the labels
    bin_tarball: str
    py_tarball: str
    py_md5: dict[str, str]  # the published MD5 of every pickled file


CIFAR: dict[str, CifarLayout] = {
    "cifar10": CifarLayout(
        classes=10, bin_dir="cifar-10-batches-bin", py_dir="cifar-10-batches-py",
        bin_files={"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
                   "test": ("test_batch.bin",)},
        py_files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)),
                  "test": ("test_batch",)},
        label_bytes=1, label_key=b"labels",
        bin_tarball="cifar-10-binary.tar.gz", py_tarball="cifar-10-python.tar.gz",
        py_md5={"data_batch_1": "c99cafc152244af753f735de768cd75f",
                "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
                "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
                "data_batch_4": "634d18415352ddfa80567beed471001a",
                "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
                "test_batch": "40351d587109b95175f43aff81a1287e"}),
    "cifar100": CifarLayout(
        classes=100, bin_dir="cifar-100-binary", py_dir="cifar-100-python",
        bin_files={"train": ("train.bin",), "test": ("test.bin",)},
        py_files={"train": ("train",), "test": ("test",)},
        label_bytes=2, label_key=b"fine_labels",  # binary records: coarse, then fine label
        bin_tarball="cifar-100-binary.tar.gz", py_tarball="cifar-100-python.tar.gz",
        py_md5={"train": "16019d7e3df5f24257cddd939b257f8d",
                "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"}),
}

# What the pickled batches are made of; anything else in a pickle is refused.
_ARRAY_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype")}


class UnverifiedFileError(ValueError):
    """A pickled CIFAR file whose MD5 is neither the published one nor a trusted one."""


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in _ARRAY_GLOBALS:
            raise pickle.UnpicklingError(f"a CIFAR batch does not hold {module}.{name}")
        return super().find_class(module, name)


def read_binary_batch(data: bytes, layout: CifarLayout, name: str
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 3, 32, 32), int64 labels) of one binary batch file's bytes."""
    record = layout.label_bytes + PIXELS
    if len(data) == 0 or len(data) % record:
        raise ValueError(f"{name}: {len(data)} bytes is not a whole number of "
                         f"{record}-byte CIFAR records")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    labels = rows[:, layout.label_bytes - 1].astype(np.int64)
    return rows[:, layout.label_bytes:].reshape(-1, 3, 32, 32), _checked(labels, layout, name)


def read_python_batch(data: bytes, layout: CifarLayout, name: str,
                      trusted_md5: Mapping[str, str] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images, int64 labels) of one pickled batch, unpickled only once its MD5 is the
    published one for ``name`` or the one ``trusted_md5`` gives for it."""
    digest = hashlib.md5(data).hexdigest()
    allowed = {layout.py_md5.get(name), (trusted_md5 or {}).get(name)} - {None}
    if digest not in allowed:
        raise UnverifiedFileError(
            f"{name} has MD5 {digest}, not the published {layout.py_md5.get(name)}; a pickled "
            "file is never unpickled unverified (use the binary version, or trust your own "
            "file's MD5 explicitly: ROBBENCH_TRUSTED_MD5=NAME=MD5)")
    batch = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    if not isinstance(batch, dict) or b"data" not in batch or layout.label_key not in batch:
        raise ValueError(f"{name} is not a CIFAR batch (needs data and "
                         f"{layout.label_key.decode()})")
    images = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[layout.label_key], dtype=np.int64)
    if images.ndim != 2 or images.shape != (len(labels), PIXELS):
        raise ValueError(f"{name}: data has shape {images.shape}, expected "
                         f"({len(labels)}, {PIXELS})")
    return images.reshape(-1, 3, 32, 32), _checked(labels, layout, name)


def _checked(labels: np.ndarray, layout: CifarLayout, name: str) -> np.ndarray:
    if len(labels) and int(labels.max()) >= layout.classes:
        raise ValueError(f"{name}: label {int(labels.max())} is not below {layout.classes}")
    return labels
