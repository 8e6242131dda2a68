"""Defenses of the zoo by name, around robbench's shipped models.

SAP, test-time dropout and quantization wrap the dataset's ConvNet; purification chains the
Short Run classifier's generator and the ConvNet; noise injection and random resize-pad wrap a
ConvNet trained with the same randomness (a checkpoint of its own, see
:mod:`robbench.defenses.training`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from robbench.defenses.catalog import check_defense, wrap
from robbench.defenses.purify import Purify
from robbench.defenses.training import load_trained_base
from robbench.models.registry import load_zoo_model


def load_defense(name: str, dataset: str, *, device: str = "cpu",
                 data_dir: str | Path | None = None, quiet: bool = True
                 ) -> tuple[nn.Module, list[str], dict[str, Any]]:
    """Defense ``name`` of ``dataset`` on ``device``: (module in eval mode, the weight files it
    uses, the card of its own checkpoint or of its base)."""
    entry = check_defense(name, dataset)
    settings = entry.settings(dataset)
    if name == "purify":
        shortrun, sr_card = load_zoo_model("shortrun", dataset, device=device,
                                           data_dir=data_dir, quiet=quiet)
        convnet, card = load_zoo_model("convnet", dataset, device=device, data_dir=data_dir,
                                       quiet=quiet)
        c = shortrun.config
        module = Purify(shortrun.generator, convnet, steps=c.langevin_steps,
                        step_size=c.step_size, sigma=c.sigma)
        return module.eval(), [_weights(sr_card), _weights(card)], card
    if entry.trained:
        base, card = load_trained_base(name, dataset, device=device, data_dir=data_dir,
                                       quiet=quiet)
    else:
        base, card = load_zoo_model("convnet", dataset, device=device, data_dir=data_dir,
                                    quiet=quiet)
    return wrap(name, base, settings).eval(), [_weights(card)], card


def _weights(card: dict[str, Any]) -> str:
    return card.get("weights") or Path(card["path"]).name
