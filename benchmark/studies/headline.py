"""The headline benchmark of a dataset: every attack of the protocol, diagnostics, table, figures.

One command regenerates a dataset's committed results directory::

    OUT/runs/<name>/              one resumable run per attack (see ``run_grid``)
    OUT/diagnostics/<dataset>-<model>/   the gradient-masking checklist of each model
    OUT/table.md, OUT/table.csv   models side by side, per-example worst case per eps, and the
                                  diagnostics rows
    OUT/accuracy.md               the table without the diagnostics
    OUT/worst_case.md             clean and worst-case accuracy per eps, with the attacks it
                                  covers (the README's summary)
    OUT/figures/                  accuracy against eps, adversarial examples, samples, ...
    OUT/headline.json             the settings, device and seconds per attack (the sum of its
                                  cells' times, so a resumed run reports the full cost), and the
                                  devices that computed each attack's cells
    OUT/report.html               all of it on one self-contained page (``robbench report``)

Attacks whose cost scales with EOT samples or queries run on the first ``n_eot`` test images,
the rest on the first ``n``; ``n_attack`` gives single attacks their own size, so that one too
expensive for the device at hand can run on fewer images without shrinking the others (the
table's ``n`` column says which ran on how many, and the worst case is given per size).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from robbench.atomic_write import atomic_write_text
from robbench.attacks.target import Target
from robbench.data.datasets import Dataset, load_dataset
from robbench.models.config import MODEL_NAMES
from robbench.models.matched_control import MATCHED, MATCHED_DATASETS
from robbench.models.zoo import LoadedModel
from robbench.records.scoring import ALL_DRAWS_AT
from robbench.records.store import DirectoryStore, run_devices
from robbench.report.html_report import write_report
from robbench.report.plots import make_plots
from robbench.report.tables import results_table, worst_case_markdown
from robbench.runs.config import RunConfig
from robbench.runs.distributed import SINGLE, World, join_world
from robbench.runs.executor import execute
from robbench.runs.named import load_models, test_split, transfer_sources
from robbench.studies.diagnostics import DiagnoseConfig
from robbench.studies.diagnostics_report import diagnose_loaded
from robbench.studies.headline_protocol import HEADLINE_NAMES, HeadlineRun, headline_runs
from robbench.version import __version__


def headline_models(dataset: str) -> tuple[str, ...]:
    """The zoo models a dataset's headline compares: the ConvNet and the Short Run classifier,
    and where the two differ in clean accuracy the ConvNet matched to it (``convnet-matched``)."""
    return (*MODEL_NAMES, MATCHED) if dataset in MATCHED_DATASETS else MODEL_NAMES


@dataclass
class HeadlineConfig:
    """Sizes of the headline benchmark (``None`` = the whole test set; models ``None``: the
    dataset's :func:`headline_models`)."""

    dataset: str = "digits"
    models: tuple[str, ...] | None = None
    n: int | None = None
    n_eot: int | None = 1000
    draws: int = 50
    selection_draws: int = 50
    eot: int | str = 16
    seed: int = 0
    attacks: tuple[str, ...] = HEADLINE_NAMES
    diagnostics: DiagnoseConfig | None = field(default_factory=DiagnoseConfig)  # None: skip
    n_attack: dict[str, int] = field(default_factory=dict)  # per-attack sizes, capped by n

    def __post_init__(self) -> None:
        if self.models is None:
            self.models = headline_models(self.dataset)
        for name in (*self.attacks, *self.n_attack):
            if name not in HEADLINE_NAMES:
                raise ValueError(
                    f"headline attack {name!r} is unknown; allowed: {', '.join(HEADLINE_NAMES)}"
                )
        for name, size in self.n_attack.items():
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"test examples for {name} {size!r} must be an integer >= 1")

    def size(self, run: HeadlineRun) -> int | None:
        """Test examples ``run`` covers: its own size, else n_eot for EOT-sized attacks, else n,
        never more than n."""
        default = _smaller(self.n, self.n_eot) if run.eot_sized else self.n
        return _smaller(self.n, self.n_attack[run.name]) if run.name in self.n_attack else default


def _smaller(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def run_headline(
    cfg: HeadlineConfig,
    out_dir: str | Path,
    models: Mapping[str, LoadedModel],
    data: Dataset,
    *,
    device: str = "cpu",
    batch_size: int | None = None,
    quiet: bool = False,
    world: World = SINGLE,
    companions: Mapping[str, LoadedModel] | None = None,
) -> dict[str, Any] | None:
    """Run (or resume) every attack on ``models``, then (rank 0) the diagnostics, the table
    and the figures; returns the headline record on rank 0."""
    out = Path(out_dir)
    record: dict[str, Any] = {"config": asdict(cfg), "device": device, "robbench": __version__,
                              "seconds": {}, "run_devices": {}}
    stores = []
    for run in headline_runs(cfg.eot):
        names = run_models(run, cfg.models, models)
        if run.name not in cfg.attacks or not names:
            continue
        config = RunConfig(dataset=cfg.dataset, models=names, attacks=[run.name],
                           eps=list(run.eps), n=cfg.size(run), draws=cfg.draws,
                           selection_draws=cfg.selection_draws, seed=cfg.seed,
                           params=dict(run.params))
        store = DirectoryStore(out / "runs" / run.name)
        x, y = test_split(data, config.n)
        summary = execute(config, {m: models[m] for m in names}, x, y, store, device=device,
                          batch_size=batch_size, quiet=quiet, companions=companions,
                          classes=data.classes, world=world)
        if world.main:
            record["seconds"][run.name] = round(float(summary["seconds"].sum()), 1)
            record["run_devices"][run.name] = run_devices(store.read_meta())
        stores.append(store)
    if not world.main:
        return None
    diagnostics = headline_diagnostics(cfg, out, models, data, companions, device, quiet, record)
    write_headline_tables(stores, out, diagnostics)
    targets = run_targets(stores[0], models)
    record["figures"] = [str(p) for p in make_plots(stores, out / "figures", targets=targets,
                                                    test_images=(data.x_test, data.y_test))]
    atomic_write_text(out / "headline.json", json.dumps(record, indent=2) + "\n")
    write_report(out)
    return record


def run_models(run: HeadlineRun, names: Sequence[str], models: Mapping[str, LoadedModel]
               ) -> list[str]:
    """The models ``run`` attacks: all of ``names``, or their deterministic ones (a zoo model
    declares whether it is random)."""
    return [m for m in names
            if not (run.deterministic_only and getattr(models[m].module, "stochastic", False))]


def headline_diagnostics(cfg, out, models, data, companions, device, quiet, record) -> list[str]:
    """Every model's diagnostics report (kept when its model and settings are unchanged)."""
    if cfg.diagnostics is None:
        return []
    everyone = {**(companions or {}), **models}
    paths = []
    for name, loaded in models.items():
        diag_dir = out / "diagnostics" / f"{cfg.dataset}-{name}"
        source = next((m for other, m in everyone.items() if other != name), None)
        _, seconds = diagnose_loaded(loaded, data, diag_dir, source=source,
                                     config=cfg.diagnostics, device=device, quiet=quiet)
        record["seconds"][f"diagnostics-{name}"] = round(seconds, 1)
        paths.append(str(diag_dir / "diagnostics.csv"))
    return paths


def write_headline_tables(stores: list[DirectoryStore], out: Path, diagnostics: list[str]
                          ) -> None:
    """table.md/.csv (with diagnostics), accuracy.md and worst_case.md."""
    for fmt in ("md", "csv"):
        atomic_write_text(out / f"table.{fmt}",
                          results_table(stores, fmt, diagnostics, all_draws_at=ALL_DRAWS_AT))
    atomic_write_text(out / "accuracy.md",
                      results_table(stores, "md", all_draws_at=ALL_DRAWS_AT))
    atomic_write_text(out / "worst_case.md", worst_case_markdown(stores))


def run_targets(store: DirectoryStore, models: Mapping[str, LoadedModel]) -> dict[str, Target]:
    """The models as the run treated them (its recorded randomness)."""
    recorded = store.read_meta().get("models", {})
    return {name: Target(m.module, bool(recorded.get(name, {}).get("stochastic",
                                                                  getattr(m.module, "stochastic",
                                                                          False))), name=name)
            for name, m in models.items()}


def run_headline_named(cfg: HeadlineConfig, out_dir: str | Path, *, device: str = "cpu",
                       data_dir: str | None = None, batch_size: int | None = None,
                       quiet: bool = False, checkpoints: Mapping[str, str] | None = None,
                       normalize: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """:func:`run_headline` on the dataset and models ``cfg`` names."""
    world, device = join_world(device)
    data = load_dataset(cfg.dataset, data_dir)
    models = load_models(cfg.models, cfg.dataset, device=device, data_dir=data_dir,
                         quiet=quiet, checkpoints=checkpoints, normalize=normalize)
    probe = RunConfig(dataset=cfg.dataset, models=list(cfg.models), attacks=list(cfg.attacks))
    return run_headline(cfg, out_dir, models, data, device=device, batch_size=batch_size,
                        quiet=quiet, world=world,
                        companions=transfer_sources(probe, models, device, data_dir))
