"""The command lines that recompute a run or a headline, read back from what they recorded.

A run's ``config.json`` and a headline's ``headline.json`` hold every setting the command took;
these functions spell them out again as a ``robbench`` command, so a report can say how its
numbers are regenerated.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from robbench.attacks.registry import DEFAULT_BACKEND
from robbench.models.model_file import display_name, is_model_file

FLAG_OF_FALSE = {"random_start": "--no-random-start", "best_iterate": "--last-iterate"}
"""Attack settings whose command-line flag switches a default off."""

DEFAULT_BATCH = 500


def _values(values: Any) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def attack_setting_flags(params: dict[str, Any]) -> list[str]:
    """``RunConfig.params`` as the flags of ``robbench run`` that set them."""
    flags: list[str] = []
    for key, value in sorted(params.items()):
        if key in FLAG_OF_FALSE:
            flags += [FLAG_OF_FALSE[key]] if value is False else []
        else:
            flags += [f"--{key.replace('_', '-')}", f"{value:g}" if isinstance(value, float)
                      else str(value)]
    return flags


def run_command(meta: dict[str, Any], run_dir: str | Path) -> str:
    """``robbench run ...`` that recomputes the run whose config.json is ``meta`` into
    ``run_dir``."""
    config = meta["config"]
    words = ["robbench", "run", "--dataset", config["dataset"]]
    for spec in config["models"]:
        words += ["--model", spec]
    file_models = {display_name(s) for s in config["models"] if is_model_file(s)}
    for name, checkpoint in meta.get("checkpoints", {}).items():
        if name in file_models and str(checkpoint.get("name", "")).endswith(".safetensors"):
            words += ["--checkpoint", f"{name}={checkpoint['name']}"]
    words += ["--attack", ",".join(config["attacks"])]
    if config.get("eps"):
        words += ["--eps", _values(config["eps"])]
    if config.get("n"):
        words += ["--n", str(config["n"])]
    words += ["--draws", str(config["draws"])]
    if config.get("selection_draws"):  # runs before selection passes recorded none
        words += ["--selection-draws", str(config["selection_draws"])]
    words += ["--seed", str(config["seed"])]
    if config.get("backend", DEFAULT_BACKEND) != DEFAULT_BACKEND:
        words += ["--backend", config["backend"]]
    forced = {m.get("forced") for m in meta.get("models", {}).values()} - {None}
    if len(forced) == 1:
        words += ["--stochastic", str(forced.pop()).lower()]
    words += attack_setting_flags(config.get("params", {}))
    if int(meta.get("batch_size", DEFAULT_BATCH)) != DEFAULT_BATCH:
        words += ["--batch-size", str(meta["batch_size"])]
    return shlex.join(words + ["--run-dir", str(run_dir)])


def headline_command(record: dict[str, Any], out_dir: str | Path,
                     batch_size: int = DEFAULT_BATCH) -> str:
    """``robbench headline ...`` that recomputes the headline whose headline.json is
    ``record`` into ``out_dir`` (its runs' ``batch_size``, which sets their random draws)."""
    config = record["config"]
    words = ["robbench", "headline", "--dataset", config["dataset"]]
    for spec in config.get("models", ()):
        words += ["--model", spec]
    for key, flag in (("n", "--n"), ("n_eot", "--n-eot"), ("draws", "--draws"),
                      ("selection_draws", "--selection-draws"), ("eot", "--eot"),
                      ("seed", "--seed")):
        if config.get(key) is not None:
            words += [flag, str(config[key])]
    if config.get("n_attack"):
        words += ["--n-attack", ",".join(f"{k}={v}" for k, v in config["n_attack"].items())]
    words += ["--attacks", ",".join(config["attacks"])]
    diagnostics = config.get("diagnostics")
    if diagnostics is None:
        words += ["--no-diagnostics"]
    else:
        words += ["--diagnostics-n", str(diagnostics["n"])]
    if batch_size != DEFAULT_BATCH:
        words += ["--batch-size", str(batch_size)]
    return shlex.join(words + ["--out", str(out_dir), "--quiet"])


def report_command(path: str | Path, out: str | Path) -> str:
    """``robbench report`` that rewrites the report ``out`` of ``path``."""
    return shlex.join(["robbench", "report", str(path), "--out", str(out)])
