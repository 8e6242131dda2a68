"""What every dataset is: images in [0, 1] with labels, and the error for missing files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

# Where system packages install the official files (the error names the package).
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}
SYSTEM_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}


class DataNotFoundError(RuntimeError):
    """The dataset's files are in no searched directory and could not be downloaded."""


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


def missing_files_error(name: str, what: str, searched: list[Path]) -> DataNotFoundError:
    """The one-line error for a dataset found nowhere, with the ways to get it."""
    package = SYSTEM_PACKAGES.get(name)
    system = f", or on Debian/Ubuntu `apt-get install {package}`" if package else ""
    return DataNotFoundError(
        f"{name} files ({what}) not found in {', '.join(str(d) for d in searched)} and could "
        f"not be downloaded; put them there or pass --data-dir / set ROBBENCH_DATA{system}")
