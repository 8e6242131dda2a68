"""Fetching a dataset's official files with the standard library, checked against their MD5.

Used only when the files are in none of the directories robbench searches; any failure (no
network, a changed file) leaves nothing behind and is reported as "not available".
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.request
from pathlib import Path

from robbench.file_digest import file_digest

# The official files and their MD5 sums (those torchvision checks); mirrors in order of trial.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "svhn": ("http://ufldl.stanford.edu/housenumbers/",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/",),
}
FILES: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "svhn": {
        "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
        "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    },
    # CIFAR's binary version: read without unpickling, so it is the one fetched.
    "cifar10": {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
    "cifar100": {"cifar-100-binary.tar.gz": "03b5dce01913d631647c71ecec9e9cb8"},
}
TIMEOUT_SECONDS = 30


def md5_file(path: Path) -> str:
    return file_digest(path, "md5")


def fetch_file(urls: tuple[str, ...], name: str, md5: str, target: Path) -> None:
    """``target`` from the first of ``urls`` + ``name`` that serves a file with this MD5."""
    errors = []
    for base in urls:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".part")
        try:
            with urllib.request.urlopen(base + name, timeout=TIMEOUT_SECONDS) as response, \
                    open(fd, "wb") as out:
                shutil.copyfileobj(response, out)
            got = md5_file(Path(tmp))
            if got != md5:
                raise ValueError(f"MD5 {got}, expected {md5}")
            Path(tmp).replace(target)
            return
        except (OSError, ValueError) as exc:
            errors.append(f"{base}{name}: {exc}")
        finally:
            Path(tmp).unlink(missing_ok=True)
    raise OSError("; ".join(errors))


def download(name: str, directory: Path) -> None:
    """Every official file of dataset ``name`` into ``directory`` (OSError if any fails)."""
    directory.mkdir(parents=True, exist_ok=True)
    for file, md5 in FILES[name].items():
        if not (directory / file).is_file():
            fetch_file(MIRRORS[name], file, md5, directory / file)
