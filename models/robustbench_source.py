"""RobustBench's model zoo (Croce et al. 2021) as a model source: ``robustbench:NAME``.

``robustbench:NAME`` is the zoo's model NAME of the run's dataset under a threat model (Linf
unless told), ``robustbench:DATASET/THREAT/NAME`` names all three. The architecture comes from
RobustBench's zoo (the optional extra ``robbench[robustbench]``); the checkpoint is read from
RobustBench's own ``model_dir`` layout, ``DIR/DATASET/THREAT/NAME.pt`` with DIR
``$ROBBENCH_ROBUSTBENCH_DIR`` (default ``~/.cache/robbench/robustbench``; point it at the
``model_dir`` you give RobustBench to share its downloads), and is downloaded through
RobustBench only when missing. Weights load with ``torch.load(weights_only=True)``: a
checkpoint that needs full unpickling is refused.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import re
import sys
import types
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robbench.models.checkpoint_io import CheckpointError, sha256_file
from robbench.models.zoo import LoadedModel

PREFIX = "robustbench:"
DATASETS = ("cifar10", "cifar100")
THREAT_MODELS = ("Linf", "L2")
DIR_ENV = "ROBBENCH_ROBUSTBENCH_DIR"
INSTALL = "pip install 'robbench[robustbench]'"
_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")
_STATE_KEYS = ("state_dict", "model_state_dict", "last")  # where RobustBench's files nest it


@dataclass(frozen=True)
class RobustBenchModel:
    """One model of RobustBench's zoo."""

    dataset: str
    threat_model: str
    name: str

    @property
    def spec(self) -> str:
        return f"{PREFIX}{self.dataset}/{self.threat_model}/{self.name}"

    def checkpoint(self, directory: Path) -> Path:
        """Where RobustBench keeps its checkpoint under ``directory`` (its ``model_dir``)."""
        return directory / self.dataset / self.threat_model / f"{self.name}.pt"


def is_robustbench(text: str) -> bool:
    """Whether ``text`` names a RobustBench model."""
    return text.startswith(PREFIX)


def robustbench_name(text: str) -> str:
    """The name a RobustBench model is shown by: the zoo's name of it."""
    return text[len(PREFIX):].rsplit("/", 1)[-1]


def parse_robustbench(text: str, dataset: str, threat_model: str = "Linf") -> RobustBenchModel:
    """``robustbench:NAME`` (on ``dataset`` under ``threat_model``) or
    ``robustbench:DATASET/THREAT/NAME``, checked against the run's dataset."""
    parts = text[len(PREFIX):].split("/")
    if len(parts) == 1:
        parts = [dataset, threat_model, parts[0]]
    if len(parts) != 3 or not _NAME.match(parts[2]):
        raise ValueError(f"model {text!r} is not robustbench:NAME or "
                         "robustbench:DATASET/THREAT/NAME")
    model = RobustBenchModel(*parts)
    if model.dataset not in DATASETS:
        raise ValueError(f"RobustBench dataset {model.dataset!r} is not supported; allowed: "
                         f"{', '.join(DATASETS)}")
    if model.threat_model not in THREAT_MODELS:
        raise ValueError(f"threat model {model.threat_model!r} is unknown; allowed: "
                         f"{', '.join(THREAT_MODELS)}")
    if model.dataset != dataset:
        raise ValueError(f"model {text!r} is a {model.dataset} model; the dataset is "
                         f"{dataset!r}")
    return model


def canonical_spec(text: str, dataset: str, threat_model: str = "Linf") -> str:
    """A RobustBench name spelled out as ``robustbench:DATASET/THREAT/NAME`` (what records
    keep, so that a resumed run loads the same model); any other model as it is."""
    return parse_robustbench(text, dataset, threat_model).spec if is_robustbench(text) else text


def model_dir() -> Path:
    env = os.environ.get(DIR_ENV)
    return Path(env) if env else Path.home() / ".cache" / "robbench" / "robustbench"


def _model_dicts() -> Any:
    """RobustBench's zoo table. Only ``robustbench.model_zoo`` is imported: the package's
    ``__init__`` also imports its evaluation code, whose dependencies (AutoAttack from git,
    setuptools' pkg_resources) robbench does not need and PyPI does not provide."""
    try:
        metadata.version("robustbench")
    except metadata.PackageNotFoundError:
        raise ImportError(f"robustbench: models need RobustBench: {INSTALL}") from None
    if "robustbench" not in sys.modules:
        spec = importlib.util.find_spec("robustbench")
        package = types.ModuleType("robustbench")
        package.__path__, package.__spec__ = list(spec.submodule_search_locations), spec
        sys.modules["robustbench"] = package
    from robustbench.model_zoo.models import model_dicts  # optional library
    return model_dicts


def zoo_entry(model: RobustBenchModel) -> dict[str, Any]:
    """The zoo's entry of ``model``: its architecture factory and download id."""
    dicts = _model_dicts()
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel  # optional library
    table = dicts[BenchmarkDataset(model.dataset)][ThreatModel(model.threat_model)]
    entry = table.get(model.name)
    if entry is None:
        raise ValueError(f"RobustBench has no {model.dataset} {model.threat_model} model "
                         f"{model.name!r} (its leaderboard lists the names)")
    if isinstance(entry.get("gdrive_id"), list):
        raise ValueError(f"RobustBench model {model.name!r} is an ensemble of several "
                         "checkpoints, which robbench does not load")
    return entry


def _download(entry: dict[str, Any], path: Path) -> None:
    """The checkpoint, fetched through RobustBench into ``path`` (whole or not at all)."""
    part = path.with_name(f".{path.name}.part")
    try:
        from robustbench.utils import download_gdrive_new  # optional library
        path.parent.mkdir(parents=True, exist_ok=True)
        download_gdrive_new(entry["gdrive_id"], part)
        if not part.is_file():
            raise OSError("nothing was downloaded")
        part.replace(path)
    except Exception as exc:  # noqa: BLE001 - no network, a moved file, RobustBench's own
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileNotFoundError(f"RobustBench checkpoint {path} is missing and could not be "
                                f"downloaded ({reason}); put the file there") from None
    finally:
        part.unlink(missing_ok=True)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The weights of a RobustBench checkpoint, loaded with ``weights_only=True`` (prefixes
    ``module.`` and ``model.`` removed, as RobustBench does)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        what = f"it holds {found.group(1)}" if found else "it is not plain tensors"
        raise CheckpointError(f"checkpoint {path} needs full unpickling ({what}); robbench "
                              "loads weights only (torch.load weights_only=True)") from None
    for key in _STATE_KEYS:
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
    if not isinstance(checkpoint, dict) or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise CheckpointError(f"checkpoint {path} is not a state dict of tensors")
    return {_strip(key): value for key, value in checkpoint.items()}


def _strip(key: str) -> str:
    for prefix in ("module.", "model."):
        key = key.removeprefix(prefix)
    return key


def load_weights(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load ``state`` strictly, except that buffers the file lacks keep the architecture's
    values (RobustBench's own rule for the models whose files predate a normalisation
    buffer)."""
    expected = set(module.state_dict())
    unexpected = sorted(set(state) - expected)
    missing = sorted(expected - set(state) - {n for n, _ in module.named_buffers()})
    if unexpected or missing:
        shown = (f"unexpected {', '.join(unexpected[:3])}" if unexpected else
                 f"missing {', '.join(missing[:3])}")
        raise CheckpointError(f"checkpoint {path} does not fit its RobustBench architecture "
                              f"({shown})")
    try:
        module.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise CheckpointError(f"checkpoint {path} does not fit its RobustBench architecture "
                              f"({first})") from None


def load_robustbench(text: str, dataset: str, *, device: str = "cpu",
                     threat_model: str = "Linf") -> LoadedModel:
    """The RobustBench model ``text`` names, with its checkpoint, on ``device``."""
    model = parse_robustbench(text, dataset, threat_model)
    entry = zoo_entry(model)
    path = model.checkpoint(model_dir())
    if not path.is_file():
        _download(entry, path)
    module = entry["model"]()
    load_weights(module, read_state_dict(path), path)
    return LoadedModel(model.name, module.to(device).eval(),
                       {"name": path.name, "sha256": sha256_file(path)}, model.spec)
