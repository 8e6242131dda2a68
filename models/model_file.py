"""A user's model from a file: ``PATH.py:FUNCTION[=NAME]``, optionally with weights, or a
checkpoint ``robbench train --out PATH.safetensors`` wrote (``PATH.safetensors[=NAME]``).

The function builds the model (it is passed ``dataset=`` and ``device=`` if it takes them);
weights from ``--checkpoint FILE.safetensors`` are loaded strictly into it, and
``--normalize MEAN/STD`` puts the input standardisation the model expects in front of it. A
robbench checkpoint is rebuilt from the model card beside it, its weights verified against
the card. Records name the file as given and the SHA-256 of the weights, never an absolute
path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from safetensors.torch import load_file

from robbench.models.checkpoint_io import load_checkpoint, sha256_file
from robbench.models.normalized import Normalized
from robbench.models.robustbench_source import is_robustbench, robustbench_name
from robbench.models.zoo import LoadedModel, call_factory, weights_sha256

SPEC = re.compile(r"^(?P<path>[^:=]+\.py):(?P<function>[A-Za-z_]\w*)(?:=(?P<name>[\w.-]+))?$")
TRAINED = re.compile(r"^(?P<path>[^=]+\.safetensors)(?:=(?P<name>[\w.-]+))?$")


def is_model_file(text: str) -> bool:
    """Whether ``text`` names a model in a Python file (``PATH.py:FUNCTION[=NAME]``)."""
    return bool(SPEC.match(text))


def is_trained_checkpoint(text: str) -> bool:
    """Whether ``text`` names a checkpoint robbench trained (``PATH.safetensors[=NAME]``)."""
    return bool(TRAINED.match(text))


def load_trained_checkpoint(text: str, dataset: str, *, device: str = "cpu") -> LoadedModel:
    """The model of a checkpoint ``robbench train`` wrote, rebuilt from its card; named NAME if
    given, else by the file's stem. Its card must be of ``dataset``."""
    match = TRAINED.match(text)
    if match is None:
        raise ValueError(f"model {text!r} is not PATH.safetensors[=NAME]")
    module, card = load_checkpoint(Path(match["path"]), device)
    trained_on = card.get("dataset", card.get("spec", {}).get("dataset"))
    if trained_on != dataset:
        raise ValueError(f"checkpoint {match['path']} was trained on {trained_on!r}, not on "
                         f"the run's dataset {dataset!r}; pass --dataset {trained_on}")
    return LoadedModel(trained_checkpoint_name(text), module,
                       {"name": Path(match["path"]).name, "sha256": card["sha256"]},
                       f"checkpoint {match['path']}", card)


def display_name(spec: str) -> str:
    """The name a model spec is shown by: a zoo name as it is, a file model by
    :func:`model_file_name`, a RobustBench model by the zoo's name of it."""
    if is_robustbench(spec):
        return robustbench_name(spec)
    if is_trained_checkpoint(spec):
        return trained_checkpoint_name(spec)
    return model_file_name(spec) if is_model_file(spec) else spec


def trained_checkpoint_name(text: str) -> str:
    """The name a trained checkpoint is shown by: NAME if given, else the file's stem."""
    match = TRAINED.match(text)
    if match is None:
        raise ValueError(f"model {text!r} is not PATH.safetensors[=NAME]")
    return match["name"] or Path(match["path"]).stem


def model_file_name(text: str) -> str:
    """The name a file model is shown by: NAME if given, else FUNCTION."""
    match = SPEC.match(text)
    if match is None:
        raise ValueError(f"model {text!r} is not PATH.py:FUNCTION[=NAME]")
    return match["name"] or match["function"]


def load_model_file(text: str, dataset: str, *, device: str = "cpu",
                    checkpoint: str | Path | None = None,
                    normalize: tuple[Sequence[float], Sequence[float]] | None = None
                    ) -> LoadedModel:
    """Build the model ``text`` names, load ``checkpoint`` into it if given, and wrap it in
    :class:`~robbench.models.normalized.Normalized` if ``normalize`` is (mean, std); a
    normalised model is identified by the hash of its state, statistics included."""
    match = SPEC.match(text)
    if match is None:
        raise ValueError(f"model {text!r} is not PATH.py:FUNCTION[=NAME]")
    path = Path(match["path"])
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    module_name = f"robbench_model_file_{digest[:16]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    code = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = code
    spec.loader.exec_module(code)
    factory = getattr(code, match["function"], None)
    if not callable(factory):
        raise ValueError(f"{path} has no function {match['function']!r}")
    module = call_factory(factory, device, dataset=dataset)
    source = f"{match['path']}:{match['function']} (sha256 {digest[:12]})"
    record = {"name": f"{path.name}:{match['function']}"}
    if checkpoint is not None:
        record = {"name": Path(checkpoint).name, "sha256": _load_weights(module, checkpoint,
                                                                         match["function"],
                                                                         device)}
    if normalize is not None:
        module = Normalized(module, *normalize).to(device)
        stats = module.normalization
        source += f", normalised by mean {stats['mean']} and std {stats['std']}"
        record["sha256"] = weights_sha256(module)
    record.setdefault("sha256", weights_sha256(module))
    return LoadedModel(model_file_name(text), module, record, source)


def _load_weights(module, checkpoint: str | Path, function: str, device: str) -> str:
    """Load safetensors weights strictly into ``module``; their file's SHA-256."""
    weights = Path(checkpoint)
    if not weights.is_file():
        raise FileNotFoundError(f"checkpoint {str(weights)!r} does not exist")
    try:
        module.load_state_dict(load_file(str(weights), device=str(device)), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(f"checkpoint {weights.name} does not fit {function}: "
                         f"{first}") from None
    return sha256_file(weights)
