"""robbench's Python API: evaluate any model, diagnose it, get the zoo and its data.

    import robbench
    report = robbench.evaluate(my_model, dataset="digits", n=100, attacks=["pgd", "eot-pgd"])
    print(report.to_markdown())

``model`` is any ``torch.nn.Module`` mapping images in [0, 1] of shape (N, C, H, W) to logits
(or a dict of name -> module, compared side by side). Whether it is random is detected, never
assumed (see ``robbench.runs.detection``); the optional hooks of the model protocol
(``docs/models.md``) enable the structure-aware attacks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from robbench.attacks.registry import DEFAULT_BACKEND, check_settings, get_attack
from robbench.data.datasets import Dataset, load_dataset
from robbench.devices import parameter_device, resolve_device
from robbench.models.config import MODEL_NAMES
from robbench.models.robustbench_source import is_robustbench, load_robustbench
from robbench.models.zoo import LoadedModel, load_named_model, weights_sha256
from robbench.records.scoring import ALL_DRAWS_AT
from robbench.records.store import DirectoryStore, MemoryStore, RunStore
from robbench.report.evaluation_report import Report
from robbench.runs.config import RunConfig
from robbench.runs.detection import as_target
from robbench.runs.distributed import join_world
from robbench.runs.executor import execute
from robbench.studies.diagnostics import DiagnoseConfig, run_diagnostics
from robbench.studies.headline_protocol import headline_runs

CUSTOM_DATA = "custom"
"""The dataset name recorded for images passed as tensors."""


def load_model(name: str, dataset: str, *, device: str = "cpu",
               data_dir: str | None = None) -> nn.Module:
    """A zoo model (``convnet``, ``shortrun``, or a registered or installed name) of a dataset:
    the shipped checkpoint, else a cached one, else trained now; or a RobustBench model,
    ``robustbench:NAME`` (Linf) or ``robustbench:DATASET/THREAT/NAME`` (extra
    ``robbench[robustbench]``)."""
    if is_robustbench(name):
        return load_robustbench(name, dataset, device=device).module
    return load_named_model(name, dataset, device=device, data_dir=data_dir).module


def model_device(model: nn.Module, device: str = "auto") -> str:
    """``auto``: where the model's first parameter or buffer lives (a parameter-free model:
    CUDA if available, else the CPU)."""
    if device != "auto":
        return resolve_device(device)
    found = parameter_device(model)
    return str(found) if found is not None else resolve_device("auto")


def _loaded(models: nn.Module | Mapping[str, nn.Module]) -> dict[str, LoadedModel]:
    named = dict(models) if isinstance(models, Mapping) else {type(models).__name__: models}
    for name, module in named.items():
        if not isinstance(module, nn.Module):
            raise TypeError(f"model {name!r} is a {type(module).__name__}, not a "
                            "torch.nn.Module mapping images in [0, 1] to logits")
    return {name: LoadedModel(name, m, {"name": "python object", "sha256": weights_sha256(m)},
                              "python object") for name, m in named.items()}


def _images(x, y, dataset: str | None, n: int | None, data_dir: str | None
            ) -> tuple[torch.Tensor, torch.Tensor, str, int | None]:
    """(images, labels, dataset name, number of classes: the dataset's, or None for images
    given as tensors, whose models' logits then fix it)."""
    classes = None
    if (x is None) != (y is None):
        raise ValueError("give both x and y (images and labels), or neither and a dataset")
    if x is None:
        if dataset is None:
            raise ValueError("give images x, y or a robbench dataset name (e.g. dataset="
                             "'digits')")
        data: Dataset = load_dataset(dataset, data_dir)
        x, y, classes = data.x_test, data.y_test, data.classes
    x, y = torch.as_tensor(x).float().cpu(), torch.as_tensor(y).long().cpu()
    if x.dim() != 4 or len(x) != len(y):
        raise ValueError(f"x must be (N, C, H, W) with N = len(y); got {tuple(x.shape)} and "
                         f"{len(y)} labels")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError(f"images must lie in [0, 1]; got min {float(x.min()):.3g}, max "
                         f"{float(x.max()):.3g}")
    n = len(x) if n is None else min(n, len(x))
    return x[:n], y[:n], dataset or CUSTOM_DATA, classes


def _runs(attacks: str | Sequence[str], eps: Sequence[float] | None, eot: int | str | None
          ) -> list[tuple[str, list[float], dict[str, Any]]]:
    """(attack, eps, settings) per run: the headline protocol, or the named attacks."""
    if isinstance(attacks, str) and attacks == "headline":
        return [(r.name, list(eps or r.eps), dict(r.params)) for r in headline_runs(eot or 16)]
    names = [attacks] if isinstance(attacks, str) else list(attacks)
    out = []
    for name in names:
        spec = get_attack(name)
        settings = {"eot": eot} if eot is not None and "eot" in spec.defaults else {}
        out.append((name, list(eps or spec.default_eps), settings))
    return out


def _settings(attack: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that apply to ``attack`` (a setting no attack of the plan takes fails)."""
    defaults = get_attack(attack).defaults
    return {k: v for k, v in settings.items() if k in defaults}


def _companions(models, attacks, dataset, device, data_dir) -> dict[str, LoadedModel]:
    """The zoo models of a zoo dataset, as transfer sources, when the run has one model."""
    if len(models) > 1 or dataset in (None, CUSTOM_DATA):
        return {}
    if not any(get_attack(a).needs_companions for a, _, _ in attacks):
        return {}
    return {f"zoo-{n}": load_named_model(n, dataset, device=device, data_dir=data_dir)
            for n in MODEL_NAMES}


def evaluate(
    model: nn.Module | Mapping[str, nn.Module],
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    *,
    dataset: str | None = None,
    n: int | None = None,
    attacks: str | Sequence[str] = "headline",
    eps: Sequence[float] | None = None,
    draws: int = 10,
    selection_draws: int = 10,
    stochastic: bool | str = "auto",
    eot: int | str | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    diagnostics: bool = False,
    progress: bool = True,
    seed: int = 0,
    backend: str = DEFAULT_BACKEND,
    params: Mapping[str, Any] | None = None,
    data_dir: str | None = None,
) -> Report:
    """Attack ``model`` (or each model of a dict) and score it as robbench does.

    Images come from ``x``, ``y`` or the first ``n`` test images of ``dataset``. ``attacks``
    is ``"headline"`` (the full protocol) or attack names, each at its default eps unless
    ``eps`` is given. A random model gets its EOT draws and ``draws`` scoring passes (plus
    ``selection_draws`` for the worst case); ``stochastic`` forces a treatment. With ``out``
    every attack is a resumable run directory ``out/runs/<attack>/`` (readable by ``robbench
    table`` and ``plot``); without it nothing is written. ``params`` overrides attack
    settings by name (``steps``, ``step_size``, ``n_queries``, ...), as on the command line.
    """
    x, y, name, classes = _images(x, y, dataset, n, data_dir)
    models = _loaded(model)
    world, run_device = join_world(model_device(next(iter(models.values())).module, device))
    plan = _runs(attacks, eps, eot)
    check_settings([attack for attack, _, _ in plan], dict(params or {}))
    companions = _companions(models, plan, dataset, run_device, data_dir)
    stores: list[RunStore] = []
    for attack, budget, settings in plan:
        config = RunConfig(dataset=name, models=list(models), attacks=[attack], eps=budget,
                           draws=draws, selection_draws=selection_draws, seed=seed,
                           backend=backend, params=_settings(attack, {**settings,
                                                                      **(params or {})}))
        store = DirectoryStore(Path(out) / "runs" / attack) if out else MemoryStore()
        execute(config, models, x, y, store, device=run_device, batch_size=batch_size,
                quiet=not progress, stochastic=stochastic, companions=companions,
                classes=classes, world=world)
        stores.append(world.broadcast(store) if isinstance(store, MemoryStore) else store)
    world.broadcast(None)  # every rank reads the finished runs
    checks = None
    if diagnostics:
        checks = {m: diagnose(loaded.module, x, y, source=_source(models, companions, m),
                              stochastic=stochastic, device=run_device, quiet=not progress)
                  for m, loaded in models.items()}
    return Report(stores, checks, ALL_DRAWS_AT if draws > max(ALL_DRAWS_AT) else ())


def _source(models, companions, name) -> nn.Module | None:
    others = [m.module for other, m in {**companions, **models}.items() if other != name]
    return others[0] if others else None


def diagnose(
    model: nn.Module,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    *,
    dataset: str | None = None,
    n: int | None = None,
    source: nn.Module | None = None,
    config: DiagnoseConfig | None = None,
    stochastic: bool | str = "auto",
    device: str = "auto",
    quiet: bool = False,
    data_dir: str | None = None,
    active: bool = True,
) -> pd.DataFrame:
    """The gradient-masking checklist (Carlini et al. 2019) on any model: one row per check
    with PASS, FAIL or INFO. The transfer source is ``source``, else robbench's ConvNet of
    ``dataset``; without either that row says it was skipped. ``active`` adds the
    binarization test (Zimmermann et al. 2022), which runs the attack against modified models
    with a known adversarial example (``config.binarization`` sets its attack and sizes; a
    model without an ``embed`` or ``infer`` hook gets the row skipped)."""
    cfg = dataclasses.replace(config or DiagnoseConfig(), active=active)
    x, y, name, classes = _images(x, y, dataset, n, data_dir)
    run_device = model_device(model, device)
    if source is None and name != CUSTOM_DATA:
        source = load_model("convnet", name, device=run_device, data_dir=data_dir)
    probe = x[:16].to(run_device)
    target = as_target(type(model).__name__, model, probe, classes, stochastic)
    source_target = None if source is None else as_target("source", source, probe,
                                                          target.classes)
    return run_diagnostics(target, x, y, source=source_target, config=cfg, device=run_device,
                           quiet=quiet)
