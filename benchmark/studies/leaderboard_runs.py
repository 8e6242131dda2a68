"""The leaderboard's runs: the headline's L-inf protocol on one model of the zoo.

Every L-inf attack of the headline (FGSM, PGD-40, EOT-PGD with its draws chosen by
convergence, APGD-CE, AutoAttack-rand, AutoAttack's standard version on a deterministic model,
Square, transfer from the ConvNet), R = 50 evaluation and 50 selection passes, then the
gradient-masking diagnostics; beside them, as the naive evaluation a paper would quote,
AutoAttack-rand through its authors' code (``--backend autoattack``, the extra
``robbench[autoattack]``). Written as::

    OUT/<dataset>/<model>/<size>/runs/<attack>/      one resumable run per attack
    OUT/<dataset>/<model>/<size>/runs/autoattack-rand-reference/   the authors' code
    OUT/<dataset>/<model>/<size>/diagnostics/<dataset>-<model>/   the checklist
    OUT/<dataset>/<model>/<size>/protocol.json       the settings, seconds per attack

``<size>`` is ``first-<n>`` or ``all``: the images set the runs' random draws, so each size is
its own set of runs. A run interrupted anywhere resumes where it stopped when the same command
is given again. The ConvNet's and the Short Run classifier's protocol runs are their dataset's
headline; only their reference run is made here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from robbench.atomic_write import atomic_write_text
from robbench.data.datasets import load_dataset
from robbench.records.store import DirectoryStore
from robbench.report.leaderboard import BASELINES, LINF_ATTACKS, REFERENCE_RUN
from robbench.runs.config import RunConfig
from robbench.runs.executor import execute
from robbench.runs.named import load_models, test_split, transfer_sources
from robbench.studies.diagnostics import DiagnoseConfig
from robbench.studies.headline import HeadlineConfig, headline_diagnostics
from robbench.studies.headline_protocol import headline_runs
from robbench.version import __version__

DATASET_EPS = {"digits": (0.1, 0.2), "mnist": (0.1, 0.2, 0.3), "fashion-mnist": (0.1, 0.2, 0.3)}
LEADERBOARD_RUNS = (*LINF_ATTACKS, REFERENCE_RUN)


@dataclass
class LeaderboardProtocol:
    """One model's leaderboard runs: the images (the first ``n``), budgets and passes."""

    dataset: str
    model: str
    n: int | None = None
    eps: tuple[float, ...] = ()  # () = the dataset's budgets (DATASET_EPS)
    draws: int = 50
    selection_draws: int = 50
    eot: int | str = "auto"
    seed: int = 0
    attacks: tuple[str, ...] = LEADERBOARD_RUNS
    diagnostics: DiagnoseConfig = field(default_factory=DiagnoseConfig)

    def __post_init__(self) -> None:
        if self.dataset not in DATASET_EPS:
            raise ValueError(f"dataset {self.dataset!r} has no leaderboard; allowed: "
                             f"{', '.join(DATASET_EPS)}")
        unknown = [a for a in self.attacks if a not in LEADERBOARD_RUNS]
        if unknown:
            raise ValueError(f"leaderboard attack {unknown[0]!r} is unknown; allowed: "
                             f"{', '.join(LEADERBOARD_RUNS)}")
        if self.baseline:
            self.attacks = tuple(a for a in self.attacks if a == REFERENCE_RUN)
            if not self.attacks:
                raise ValueError(f"{self.model}'s protocol runs are the {self.dataset} "
                                 f"headline's; its leaderboard runs only {REFERENCE_RUN}")
        self.eps = tuple(self.eps) or DATASET_EPS[self.dataset]

    @property
    def baseline(self) -> bool:
        """The ConvNet or the Short Run classifier (their protocol is the headline)."""
        return self.model in BASELINES

    def run_configs(self, random: bool = True) -> dict[str, RunConfig]:
        """{attack: its run's config}: the headline's settings at the protocol's budgets (its
        attacks for deterministic models only left out of a ``random`` one's)."""
        configs = {}
        for run in headline_runs(self.eot):
            eps = [e for e in run.eps if e in self.eps]
            if not eps or (random and run.deterministic_only):
                continue
            names = [a for a in (run.name, f"{run.name}-reference") if a in self.attacks]
            for name in names:
                configs[name] = RunConfig(
                    dataset=self.dataset, models=[self.model], attacks=[run.name], eps=eps,
                    n=self.n, draws=self.draws, selection_draws=self.selection_draws,
                    seed=self.seed, params=dict(run.params),
                    **({"backend": "autoattack"} if name == REFERENCE_RUN else {}))
        return configs


def size_dir_name(n: int | None) -> str:
    return "all" if n is None else f"first-{n}"


def model_dir(out: str | Path, dataset: str, model: str, n: int | None) -> Path:
    """Where the runs of ``model`` on the first ``n`` test images (None: all) live."""
    return Path(out) / dataset / model / size_dir_name(n)


def run_protocol(protocol: LeaderboardProtocol, out: str | Path, *, device: str = "cpu",
                 data_dir: str | None = None, batch_size: int | None = None,
                 quiet: bool = False) -> dict[str, Any]:
    """Run (or resume) every attack of ``protocol``, then the diagnostics; returns (and
    writes) the protocol's record."""
    root = model_dir(out, protocol.dataset, protocol.model, protocol.n)
    data = load_dataset(protocol.dataset, data_dir)
    models = load_models([protocol.model], protocol.dataset, device=device, data_dir=data_dir,
                         quiet=quiet)
    record: dict[str, Any] = {"protocol": asdict(protocol), "device": device,
                              "robbench": __version__, "seconds": {}}
    random = bool(getattr(models[protocol.model].module, "stochastic", False))
    for attack, config in protocol.run_configs(random).items():
        x, y = test_split(data, config.n)
        summary = execute(config, models, x, y, DirectoryStore(root / "runs" / attack),
                          device=device, batch_size=batch_size, quiet=quiet,
                          companions=transfer_sources(config, models, device, data_dir),
                          classes=data.classes)
        record["seconds"][attack] = round(float(summary["seconds"].sum()), 1)
    if not protocol.baseline:
        headline = HeadlineConfig(dataset=protocol.dataset, models=(protocol.model,),
                                  diagnostics=protocol.diagnostics)
        probe = RunConfig(dataset=protocol.dataset, models=[protocol.model],
                          attacks=["transfer"])
        headline_diagnostics(headline, root, models, data,
                             transfer_sources(probe, models, device, data_dir), device, quiet,
                             record)
    record = merged_record(root / "protocol.json", record)
    atomic_write_text(root / "protocol.json", json.dumps(record, indent=2, default=list) + "\n")
    return record


def merged_record(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` joined with the one already at ``path``: a call that runs some of the
    attacks (``--attacks``) keeps the others' seconds, and the attacks list names them all."""
    if not path.is_file():
        return record
    old = json.loads(path.read_text())
    ran = set(old.get("protocol", {}).get("attacks", ())) | set(record["protocol"]["attacks"])
    record["protocol"]["attacks"] = [a for a in LEADERBOARD_RUNS if a in ran]
    record["seconds"] = {**old.get("seconds", {}), **record["seconds"]}
    return record
