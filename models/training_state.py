"""The state of a training between epochs, so that a long recipe runs in pieces.

After every epoch the model's weights, the optimiser's and scheduler's state and every random
state the training draws from (torch, numpy, Python, the data-order generator, CUDA's) are
written beside the output: the tensors as safetensors, the rest (stage, epoch counters, losses,
the pieces so far) as JSON. A training continued from this state ends with the same weights as
one that never stopped. Pickles are never written or read.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from robbench.atomic_write import atomic_write_text
from robbench.file_digest import file_digest

STATE_FILE = "state.json"
STATE_FORMAT = 1


class TrainingStateError(ValueError):
    """A training state is corrupt or belongs to other settings; the message names what."""


@dataclass
class TrainingProgress:
    """Where a training stands: the stage in progress (its index in the recipe; equal to the
    number of stages once finished), the passes and optimiser steps it has taken, each stage's
    last loss, one row per finished pass, the training seconds and the pieces that ran."""

    spec: dict[str, Any]
    stage: int = 0
    epoch: int = 0
    steps: int = 0
    stats: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    pieces: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False

    def position(self) -> str:
        """'stage S after E epochs' (1-based stage; E passes of it finished), or 'finished'."""
        if self.finished:
            return "finished"
        return f"stage {self.stage + 1} after {self.epoch} epoch{'s' * (self.epoch != 1)}"


def resume_dir(checkpoint: str | Path) -> Path:
    """Where the training of ``checkpoint`` keeps its state: ``NAME.resume/`` beside it."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".resume")


def capture_rng(data_order: torch.Generator) -> dict[str, Any]:
    """Every random state a training draws from, the data-order generator's included."""
    state = {"torch": torch.get_rng_state(), "data_order": data_order.get_state(),
             "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], data_order: torch.Generator) -> None:
    """Set the random states :func:`capture_rng` took."""
    torch.set_rng_state(state["torch"])
    data_order.set_state(state["data_order"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def encode(obj: Any, tensors: dict[str, torch.Tensor], key: str) -> Any:
    """``obj`` as JSON with its tensors and arrays moved into ``tensors`` (named by their path
    from ``key``); dicts keep their key types and tuples stay tuples, so :func:`decode`
    returns an equal object."""
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().cpu().clone().contiguous()
        return {"tensor": key}
    if isinstance(obj, np.ndarray):
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj).view(np.uint8).copy())
        return {"ndarray": key, "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, dict):
        if not all(isinstance(k, str | int) for k in obj):
            raise TypeError(f"{key}: only str and int keys can be stored")
        return {"dict": [[k, encode(v, tensors, f"{key}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple | list):
        items = [encode(v, tensors, f"{key}.{i}") for i, v in enumerate(obj)]
        return {"tuple": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"{key}: a {type(obj).__name__} cannot be stored in a training state")


def decode(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The object :func:`encode` stored."""
    if isinstance(tree, list):
        return [decode(v, tensors) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if "tensor" in tree:
        return tensors[tree["tensor"]]
    if "ndarray" in tree:
        raw = tensors[tree["ndarray"]].numpy().tobytes()
        return np.frombuffer(raw, dtype=np.dtype(tree["dtype"])).reshape(tree["shape"]).copy()
    if "tuple" in tree:
        return tuple(decode(v, tensors) for v in tree["tuple"])
    return {k: decode(v, tensors) for k, v in tree["dict"]}


def first_difference(saved: dict[str, Any], asked: dict[str, Any], prefix: str = "") -> str | None:
    """The first setting (e.g. ``train.bptt_epochs``) whose value differs, with both values."""
    for key in dict.fromkeys([*saved, *asked]):
        a, b = saved.get(key), asked.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif _plain(a) != _plain(b):
            return f"{prefix}{key} = {_plain(a)!r} (this command: {_plain(b)!r})"
    return None


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class StateStore:
    """A training's state in a directory: ``state.json`` names the safetensors file of the
    last finished epoch and its SHA-256. Each save writes a new tensor file, then replaces the
    JSON, then removes older tensor files, so a training killed at any moment leaves the last
    finished epoch's state whole."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def exists(self) -> bool:
        return (self.directory / STATE_FILE).is_file()

    def save(self, progress: TrainingProgress, payload: dict[str, Any]) -> None:
        """Write ``progress`` and ``payload`` (weights, optimiser, scheduler, random states)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, torch.Tensor] = {}
        tree = encode(payload, tensors, "state")
        name = f"epoch-{len(progress.history):05d}.safetensors"
        tmp = self.directory / f".{name}.tmp"
        save_file(tensors, str(tmp))
        digest = file_digest(tmp, "sha256")
        tmp.replace(self.directory / name)
        record = {"format": STATE_FORMAT, "tensors": name, "sha256": digest,
                  "progress": dataclasses.asdict(progress), "payload": tree}
        atomic_write_text(self.directory / STATE_FILE, json.dumps(record, indent=1))
        for old in self.directory.glob("*.safetensors"):
            if old.name != name:
                old.unlink()

    def progress(self) -> TrainingProgress:
        """The saved progress alone (no tensors read): where a training stands, its history."""
        path = self.directory / STATE_FILE
        try:
            return TrainingProgress(**json.loads(path.read_text())["progress"])
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise TrainingStateError(f"training state in {self.directory} is unreadable "
                                     f"({exc}); delete it to start over") from None

    def load(self) -> tuple[TrainingProgress, dict[str, Any]]:
        """The saved progress and payload; TrainingStateError if they are incomplete or bad."""
        path = self.directory / STATE_FILE
        try:
            record = json.loads(path.read_text())
            tensor_path = self.directory / record["tensors"]
            if file_digest(tensor_path, "sha256") != record["sha256"]:
                raise TrainingStateError(f"training state {tensor_path} does not match the "
                                         f"SHA-256 in {path}; delete {self.directory} to start "
                                         "over")
            tensors = load_file(str(tensor_path))
        except (OSError, KeyError, json.JSONDecodeError) as exc:
            raise TrainingStateError(f"training state in {self.directory} is unreadable "
                                     f"({exc}); delete it to start over") from None
        return TrainingProgress(**record["progress"]), decode(record["payload"], tensors)

    def clear(self) -> None:
        """Remove the state (a finished training's checkpoint and card replace it)."""
        shutil.rmtree(self.directory, ignore_errors=True)
