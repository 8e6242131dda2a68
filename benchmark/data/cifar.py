"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from their official files, in either format.

In each searched directory (``DIR/NAME``, then ``DIR``) robbench looks for the extracted
binary folder (``cifar-10-batches-bin``), the extracted Python folder
(``cifar-10-batches-py``, torchvision's layout), the batch files themselves, then the
tarballs; CIFAR-100 likewise. When none is there and the network allows, the binary tarball
is fetched from the official site and kept only if its MD5 is the published one.
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from robbench.data.cifar_formats import CIFAR, CifarLayout, read_binary_batch, read_python_batch
from robbench.data.dataset import Dataset, missing_files_error
from robbench.data.download import download

TRUST_ENV = "ROBBENCH_TRUSTED_MD5"
"""``NAME=MD5,...``: pickled files of your own that you trust besides the published ones."""

ReadFile = Callable[[str], bytes]


def cifar_dirs(name: str, root: Path) -> list[Path]:
    """The directories searched for dataset ``name``, in order."""
    return [root / name, root]


def trusted_from_env() -> dict[str, str]:
    """The MD5s ``ROBBENCH_TRUSTED_MD5`` trusts, by file name (empty when unset)."""
    trusted = {}
    for item in os.environ.get(TRUST_ENV, "").split(","):
        if item.strip():
            file, sep, md5 = item.strip().partition("=")
            if not sep or not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
                raise ValueError(f"{TRUST_ENV} item {item.strip()!r} is not NAME=MD5 "
                                 "(a 32-digit hex MD5)")
            trusted[file] = md5.lower()
    return trusted


def _folder_reader(folder: Path, files: list[str]) -> ReadFile | None:
    if all((folder / f).is_file() for f in files):
        return lambda f: (folder / f).read_bytes()
    return None


def _tarball_reader(path: Path, folder: str, files: list[str]) -> ReadFile | None:
    """The tarball's members ``folder/FILE`` (read into memory once), if it holds them all."""
    if not path.is_file():
        return None
    wanted = {f"{folder}/{f}": f for f in files}
    members: dict[str, bytes] = {}
    with tarfile.open(path, "r:*") as tar:
        for info in tar:
            key = info.name.removeprefix("./")
            if key in wanted and info.isfile():
                members[wanted[key]] = tar.extractfile(info).read()
    if len(members) != len(files):
        raise ValueError(f"{path} lacks {', '.join(sorted(set(files) - set(members)))} "
                         f"under {folder}/")
    return members.__getitem__


def _sources(directory: Path, layout: CifarLayout
             ) -> list[tuple[str, Callable[[], ReadFile | None]]]:
    """(format, opener) of every place in ``directory`` the files may be, in order of trial."""
    bin_files = [f for split in layout.bin_files.values() for f in split]
    py_files = [f for split in layout.py_files.values() for f in split]
    return [
        ("binary", lambda: _folder_reader(directory / layout.bin_dir, bin_files)),
        ("python", lambda: _folder_reader(directory / layout.py_dir, py_files)),
        ("binary", lambda: _folder_reader(directory, bin_files)),
        ("python", lambda: _folder_reader(directory, py_files)),
        ("binary", lambda: _tarball_reader(directory / layout.bin_tarball, layout.bin_dir,
                                           bin_files)),
        ("python", lambda: _tarball_reader(directory / layout.py_tarball, layout.py_dir,
                                           py_files)),
    ]


def _locate(name: str, root: Path) -> tuple[str, ReadFile] | None:
    for directory in cifar_dirs(name, root):
        for kind, opener in _sources(directory, CIFAR[name]):
            reader = opener()
            if reader is not None:
                return kind, reader
    return None


def _split(kind: str, read: ReadFile, layout: CifarLayout, split: str,
           trusted: Mapping[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    if kind == "binary":
        parts = [read_binary_batch(read(f), layout, f) for f in layout.bin_files[split]]
    else:
        parts = [read_python_batch(read(f), layout, f, trusted) for f in layout.py_files[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    x = torch.from_numpy(images).float().div_(255.0)
    return x, torch.from_numpy(labels)


def load_cifar(name: str, root: Path, allow_download: bool = True,
               trusted_md5: Mapping[str, str] | None = None) -> Dataset:
    """CIFAR-10 or CIFAR-100 (fine labels): 50,000 training and 10,000 test images in [0, 1].

    ``trusted_md5`` ({file name: MD5}, default from ``ROBBENCH_TRUSTED_MD5``) lets pickled
    files of your own be read; without it only the published files are ever unpickled.
    """
    layout = CIFAR[name]
    found = _locate(name, root)
    if found is None and allow_download:
        try:
            download(name, root / name)
        except OSError:
            pass  # reported below as not found
        found = _locate(name, root)
    if found is None:
        what = (f"{layout.bin_dir}/, {layout.py_dir}/, {layout.bin_tarball} or "
                f"{layout.py_tarball}")
        raise missing_files_error(name, what, cifar_dirs(name, root))
    kind, read = found
    trusted = trusted_from_env() if trusted_md5 is None else dict(trusted_md5)
    train = _split(kind, read, layout, "train", trusted)
    test = _split(kind, read, layout, "test", trusted)
    return Dataset(name, *train, *test, classes=layout.classes)
