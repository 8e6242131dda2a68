"""Models by name: the built-in zoo, names registered in code, and installed packages' names.

A name maps to a factory. The built-in ``convnet`` and ``shortrun`` load the shipped (or a
cached, or a freshly trained) checkpoint of a dataset, ``convnet-matched`` the ConvNet stopped
at the Short Run classifier's accuracy (``robbench.models.matched_control``), the built-in
defenses
(``robbench.defenses``: ``sap``, ``noise``, ...) wrap them; :func:`register_model` adds a name in
code, and an installed distribution adds names through the entry-point group
``robbench.models`` (each entry point is a factory). A factory is called as
``factory(dataset)``, with ``device=`` too if it takes that parameter, and returns an
``nn.Module`` (see the model protocol in ``robbench.models.protocol``).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robbench.defenses.catalog import DEFENSE_NAMES
from robbench.defenses.loading import load_defense
from robbench.models.config import MODEL_NAMES
from robbench.models.matched_control import MATCHED, load_matched
from robbench.models.registry import load_zoo_model

ENTRY_POINT_GROUP = "robbench.models"
ModelFactory = Callable[..., nn.Module]
_REGISTERED: dict[str, ModelFactory] = {}


@dataclass
class LoadedModel:
    """A model under evaluation and how to name it in records (never a machine's path)."""

    name: str
    module: nn.Module
    checkpoint: dict[str, str]  # {"name": file or source, "sha256": weights hash}
    source: str
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return self.checkpoint["sha256"]


def weights_sha256(module: nn.Module) -> str:
    """SHA-256 of a module's state (names, dtypes, shapes, values): identifies weights that no
    checkpoint file names (a parameter-free module hashes its empty state)."""
    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        tensor = value.cpu().contiguous()  # state_dict() tensors are already detached
        h.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def register_model(name: str, factory: ModelFactory) -> None:
    """Make ``name`` loadable wherever robbench takes a model name."""
    if name in MODEL_NAMES or name in DEFENSE_NAMES or name == MATCHED:
        raise ValueError(f"model name {name!r} is built in; choose another")
    _REGISTERED[name] = factory


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def model_names() -> list[str]:
    """Every name a model can be loaded by: built-in models and defenses, registered, then
    installed packages'."""
    return list(dict.fromkeys([*MODEL_NAMES, MATCHED, *DEFENSE_NAMES, *_REGISTERED,
                               *_entry_points()]))


def call_factory(factory: Callable[..., Any], device: str, **kwargs: Any) -> nn.Module:
    """``factory(**kwargs)``, passing ``device`` and only the keywords it takes; a module that
    was not given the device is moved to it."""
    params = inspect.signature(factory).parameters
    takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
    given = {k: v for k, v in {**kwargs, "device": device}.items() if takes_all or k in params}
    module = factory(**given)
    if not isinstance(module, nn.Module):
        raise TypeError(f"{getattr(factory, '__name__', factory)!r} returned "
                        f"{type(module).__name__}, not a torch.nn.Module")
    return module if "device" in given else module.to(device)


def load_named_model(name: str, dataset: str, *, device: str = "cpu",
                     data_dir: str | Path | None = None, quiet: bool = True) -> LoadedModel:
    """The model a name stands for on ``dataset``, on ``device``."""
    if name in (*MODEL_NAMES, MATCHED):
        where = {"device": device, "data_dir": data_dir, "quiet": quiet}
        module, card = (load_matched(dataset, **where) if name == MATCHED
                        else load_zoo_model(name, dataset, **where))
        weights = card.get("weights") or Path(card.get("path", name)).name
        return LoadedModel(name, module, {"name": weights, "sha256": card["sha256"]},
                           f"zoo:{dataset}-{name}", card)
    if name in DEFENSE_NAMES:
        module, weights, card = load_defense(name, dataset, device=device, data_dir=data_dir,
                                             quiet=quiet)
        return LoadedModel(name, module, {"name": "+".join(weights),
                                          "sha256": weights_sha256(module)},
                           f"zoo:{dataset}-{name}", card)
    factory = _REGISTERED.get(name)
    source = f"registered:{name}"
    if factory is None:
        entry = _entry_points().get(name)
        if entry is None:
            raise ValueError(f"model {name!r} is unknown; allowed: {', '.join(model_names())} "
                             "or FILE.py:FUNCTION")
        factory, source = entry.load(), f"entry point {entry.value}"
    module = call_factory(factory, device, dataset=dataset)
    return LoadedModel(name, module, {"name": source, "sha256": weights_sha256(module)}, source)
