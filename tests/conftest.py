"""Shared fixtures: the digits data, tiny untrained models, and the shipped digits models."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from robbench.attacks.target import Target
from robbench.data.cifar_formats import CIFAR
from robbench.data.datasets import load_digits
from robbench.models.build import build_model
from robbench.models.config import ModelConfig
from robbench.models.registry import load_zoo_model
from robbench.records.scoring import predict_draws
from robbench.runs.named import run_named

# One intra-op thread by default: the test models are tiny, and spinning OpenMP threads are very
# slow on a busy 2-core machine. CI reruns the equivalence tests with ROBBENCH_TEST_THREADS=2,
# which changes the order of reductions the way another CPU does.
torch.set_num_threads(int(os.environ.get("ROBBENCH_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def digits():
    return load_digits()


def first_300_test_images(dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first 300 official test images of ``dataset`` (mnist, fashion-mnist) in [0, 1] and
    their labels, from the committed ``tests/data/<dataset>_test_first300.npz``."""
    fixture = Path(__file__).parent / "data" / f"{dataset.replace('-', '_')}_test_first300.npz"
    with np.load(fixture) as data:
        return (torch.from_numpy(data["x"]).float().div(255.0)[:, None],
                torch.from_numpy(data["y"]).long())


def tiny_config(name: str, **overrides) -> ModelConfig:
    """A small 8x8 model that runs in milliseconds."""
    kw = dict(name=name, channels=1, image_size=8, width=4, latent=4, langevin_steps=3,
              step_size=0.005, sigma=0.1)
    kw.update(overrides)
    return ModelConfig(**kw)


def target(model: torch.nn.Module, classes: int = 10) -> Target:
    """A zoo or test model as an attack target (its own ``stochastic`` flag, which the zoo's
    models declare truthfully; user models are detected in ``robbench.runs``)."""
    return Target(model, bool(getattr(model, "stochastic", False)), classes)


def accuracy_of(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int = 1
                ) -> float:
    """Mean fraction of ``draws`` passes classifying ``x`` as ``y``."""
    return (predict_draws(model, x, draws, 500, "cpu") == y[None]).float().mean().item()


def run_in(config, run_dir: Path, **kwargs):
    """Run ``config`` by name into ``run_dir`` (quiet); returns (run_dir, summary)."""
    summary = run_named(config, run_dir, **{"quiet": True, **kwargs})
    return Path(run_dir), summary


class ConfidentLinear(torch.nn.Module):
    """A linear classifier so confident on its inputs that float32 softmax saturates."""

    def __init__(self, margin: float) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(10, 16))
        with torch.no_grad():
            self.weight[0] = margin / 8.0  # class 0 wins by about `margin` on inputs of 0.5
            self.weight[1:] = torch.linspace(-1.0, 1.0, 9 * 16).view(9, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.t()


@pytest.fixture
def tiny_shortrun():
    torch.manual_seed(0)
    return build_model(tiny_config("shortrun")).eval()


@pytest.fixture
def tiny_convnet():
    torch.manual_seed(0)
    return build_model(tiny_config("convnet")).eval()


@pytest.fixture(scope="session")
def shipped_convnet():
    return load_zoo_model("convnet", "digits")[0]


@pytest.fixture(scope="session")
def shipped_shortrun():
    return load_zoo_model("shortrun", "digits")[0]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Never train into, or read from, the user's cache during tests."""
    monkeypatch.setenv("ROBBENCH_CACHE", str(tmp_path / "cache"))


CIFAR_SIZES = {"train": 3, "test": 4}  # images per synthetic batch file


def cifar_batches(name: str, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random uint8 images (N, 3, 32, 32) and labels for every batch file of a CIFAR layout."""
    layout, rng = CIFAR[name], np.random.default_rng(seed)
    return {stem: (rng.integers(0, 256, (CIFAR_SIZES[split], 3, 32, 32), dtype=np.uint8),
                   rng.integers(0, layout.classes, CIFAR_SIZES[split]))
            for split, stems in layout.py_files.items() for stem in stems}


def write_cifar(directory: Path, name: str, fmt: str, seed: int = 0
                ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """Tiny synthetic CIFAR files in an official format under ``directory``: ``binary`` or
    ``python`` (the extracted folders) or ``binary-tar`` / ``python-tar`` (the tarballs).
    Returns the batches written and the MD5 of every pickled file (to trust in tests)."""
    layout, batches = CIFAR[name], cifar_batches(name, seed)
    files, md5 = {}, {}
    for stem, (x, y) in batches.items():
        if fmt.startswith("binary"):
            labels = np.stack([y // 5, y] if layout.label_bytes == 2 else [y], 1)
            rows = np.concatenate([labels.astype(np.uint8), x.reshape(len(x), -1)], 1)
            files[f"{layout.bin_dir}/{stem}.bin"] = rows.tobytes()
        else:
            blob = pickle.dumps({b"batch_label": stem.encode(), layout.label_key: y.tolist(),
                                 b"data": x.reshape(len(x), -1)}, protocol=3)
            files[f"{layout.py_dir}/{stem}"] = blob
            md5[stem] = hashlib.md5(blob).hexdigest()
    directory.mkdir(parents=True, exist_ok=True)
    if fmt.endswith("-tar"):
        tarball = layout.bin_tarball if fmt.startswith("binary") else layout.py_tarball
        with tarfile.open(directory / tarball, "w:gz") as tar:
            for member, data in files.items():
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    else:
        for member, data in files.items():
            (directory / member).parent.mkdir(parents=True, exist_ok=True)
            (directory / member).write_bytes(data)
    return batches, md5
