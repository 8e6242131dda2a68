"""Checkpoints: safetensors weights plus a JSON model card carrying the weights' SHA-256.

Pickles are never loaded. Files are written atomically (temp file, then rename).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from robbench.atomic_write import atomic_write_text
from robbench.file_digest import file_digest
from robbench.models.build import build_model
from robbench.models.config import ModelSpec


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not match its model card."""


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")


def card_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def save_checkpoint(model: nn.Module, spec: ModelSpec, path: Path, card: dict[str, Any]) -> Path:
    """Save weights to ``path`` (.safetensors) and the model card beside it (.json)."""
    path = Path(path)
    state = {k: v.cpu().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp)
        digest = sha256_file(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    full_card = {**card, "spec": spec.to_dict(), "sha256": digest, "weights": path.name}
    atomic_write_text(card_path(path), json.dumps(full_card, indent=2))
    return path


def read_card(path: Path) -> dict[str, Any]:
    cpath = card_path(Path(path))
    try:
        return json.loads(cpath.read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(f"model card {cpath} is missing") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"model card {cpath} is not valid JSON: {exc}") from exc


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model from its card and load verified weights; raise CheckpointError if bad."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    card = read_card(path)
    digest = sha256_file(path)
    if digest != card.get("sha256"):
        raise CheckpointError(
            f"checkpoint {path} has SHA-256 {digest[:16]}…, its card says "
            f"{str(card.get('sha256'))[:16]}…: the file is corrupt or does not belong to the card"
        )
    spec = ModelSpec.from_dict(card["spec"])
    model = build_model(spec.model)
    try:
        state = load_file(str(path), device="cpu")
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"checkpoint {path} does not match its model card: {exc}") from exc
    return model.to(device).eval(), card
