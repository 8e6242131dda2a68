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

Attacks whose cost scales with EOT samples or queries run on the first ``n_eot`` test images,
the rest on the first ``n``; ``n_attack`` gives single attacks their own size, so that one too
expensive for the device at hand can run on fewer images without shrinking the others (the
table's ``n`` column says which ran on how many, and the worst case is given per size).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robbench import __version__
from robbench.attacks.diagnostics import (
    DiagnoseConfig,
    current_report_seconds,
    diagnose_and_report,
)

LINF_EPS = (0.1, 0.2, 0.3)
LINF_ENDS = (0.1, 0.3)
L2_EPS = (1.0, 2.0)


@dataclass(frozen=True)
class HeadlineRun:
    """One attack of the headline grid: its run directory name, eps and settings."""

    name: str
    eps: tuple[float, ...]
    params: dict[str, Any] = field(default_factory=dict)
    eot_sized: bool = False  # runs on the first n_eot images


def headline_runs(eot: int = 16) -> list[HeadlineRun]:
    """The protocol: FGSM, PGD-40 and EOT-PGD at L-inf 0.1/0.2/0.3; APGD, AutoAttack-rand and
    Square at 0.1/0.3; PGD-L2, EOT-PGD-L2 and CW-L2 at 1/2; transfer from the other model."""
    return [
        HeadlineRun("pgd", LINF_EPS),
        HeadlineRun("fgsm", LINF_EPS),
        HeadlineRun("eot-pgd", LINF_EPS, {"eot": eot}, eot_sized=True),
        HeadlineRun("apgd", LINF_ENDS, eot_sized=True),
        HeadlineRun("autoattack-rand", LINF_ENDS, eot_sized=True),
        HeadlineRun("square", LINF_ENDS, eot_sized=True),
        HeadlineRun("transfer", LINF_EPS),
        HeadlineRun("pgd-l2", L2_EPS),
        HeadlineRun("eot-pgd-l2", L2_EPS, {"eot": eot}, eot_sized=True),
        HeadlineRun("cw", L2_EPS),
    ]


HEADLINE_NAMES = tuple(r.name for r in headline_runs())


@dataclass
class HeadlineConfig:
    """Sizes of the headline benchmark (``None`` = the whole test set)."""

    dataset: str = "digits"
    n: int | None = None
    n_eot: int | None = 1000
    draws: int = 10
    eot: int = 16
    seed: int = 0
    attacks: tuple[str, ...] = HEADLINE_NAMES
    diagnostics: DiagnoseConfig | None = field(default_factory=DiagnoseConfig)  # None: skip
    n_attack: dict[str, int] = field(default_factory=dict)  # per-attack sizes, capped by n

    def __post_init__(self) -> None:
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
    *,
    device: str = "cpu",
    data_dir: str | None = None,
    batch_size: int = 500,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run (or resume) every attack, the diagnostics, the table and the figures."""
    from robbench.models.checkpoint_io import atomic_write_bytes
    from robbench.models.config import MODEL_NAMES
    from robbench.plots import make_plots
    from robbench.run_grid import RunConfig, execute, run_devices
    from robbench.tables import results_table

    out = Path(out_dir)
    record: dict[str, Any] = {"config": asdict(cfg), "device": device, "robbench": __version__,
                              "seconds": {}, "run_devices": {}}
    run_dirs = []
    for run in headline_runs(cfg.eot):
        if run.name not in cfg.attacks:
            continue
        config = RunConfig(dataset=cfg.dataset, models=list(MODEL_NAMES), attacks=[run.name],
                           eps=list(run.eps), n=cfg.size(run), draws=cfg.draws, seed=cfg.seed,
                           params=dict(run.params))
        run_dir, summary = execute(config, out / "runs", device=device, batch_size=batch_size,
                                   data_dir=data_dir, quiet=quiet,
                                   run_dir=out / "runs" / run.name)
        record["seconds"][run.name] = round(float(summary["seconds"].sum()), 1)
        record["run_devices"][run.name] = run_devices(run_dir)
        run_dirs.append(Path(run_dir))
    diagnostics = []
    if cfg.diagnostics is not None:
        for model in MODEL_NAMES:
            diag_dir = out / "diagnostics" / f"{cfg.dataset}-{model}"
            seconds = current_report_seconds(diag_dir, model, cfg.dataset, cfg.diagnostics)
            if seconds is None:
                _, seconds = diagnose_and_report(model, cfg.dataset, diag_dir,
                                                 config=cfg.diagnostics, device=device,
                                                 data_dir=data_dir, quiet=quiet)
            record["seconds"][f"diagnostics-{model}"] = round(seconds, 1)
            diagnostics.append(str(diag_dir / "diagnostics.csv"))
    for fmt in ("md", "csv"):
        text = results_table(run_dirs, fmt, diagnostics)
        atomic_write_bytes(out / f"table.{fmt}", text.encode())
    atomic_write_bytes(out / "accuracy.md", results_table(run_dirs, "md").encode())
    atomic_write_bytes(out / "worst_case.md",
                       (worst_case_summary(run_dirs).to_markdown(index=False) + "\n").encode())
    record["figures"] = [str(p) for p in make_plots(run_dirs, out / "figures", data_dir=data_dir,
                                                    quiet=quiet)]
    atomic_write_bytes(out / "headline.json", (json.dumps(record, indent=2) + "\n").encode())
    return record


def worst_case_summary(run_dirs: list[Path]) -> pd.DataFrame:
    """Clean accuracy (largest n) and the per-example worst case per (norm, eps) of the runs."""
    from robbench.tables import results_frames, worst_case_frame, worst_case_wide

    wide, _ = results_frames(run_dirs)
    clean = wide[wide.attack == "none"]
    clean = clean[clean.n == clean.n.max()].head(1).assign(attack="clean", eps="-")
    worst = worst_case_wide(worst_case_frame(run_dirs)).sort_values(["eps", "attack", "n"],
                                                                      kind="stable")
    models = [c for c in wide.columns if c not in
              ("dataset", "attack", "norm", "eps", "steps", "eot", "n")]
    columns = ["attack", "norm", "eps", "n", *models, "attacks"]
    summary = pd.concat([clean.assign(attacks="-"), worst], ignore_index=True)
    return summary[columns].rename(columns={"attack": "row"})
