"""What a run evaluates (:class:`RunConfig`) and the checks that keep a resumed run one run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from robbench.attacks.registry import DEFAULT_BACKEND, get_attack, params_for
from robbench.models.config import MODEL_NAMES
from robbench.models.model_file import display_name
from robbench.records.store import RunStore, cell_id
from robbench.runs.seeding import SEEDING


@dataclass
class RunConfig:
    """What a run evaluates; equal configs share a run id, which is what makes runs resumable.

    ``draws`` (R) fresh passes score every example of a random model; ``selection_draws``
    further, independent passes are used only to choose the per-example worst case, so that
    the reported scores are not the ones that were minimised over.
    """

    dataset: str = "digits"
    models: list[str] = field(default_factory=lambda: list(MODEL_NAMES))
    attacks: list[str] = field(default_factory=lambda: ["pgd"])
    eps: list[float] | None = None
    n: int | None = None
    draws: int = 10
    selection_draws: int = 10
    seed: int = 0
    backend: str = DEFAULT_BACKEND
    params: dict[str, Any] = field(default_factory=dict)

    def run_id(self) -> str:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return f"{self.dataset}-{'+'.join(self.attacks)}-{hashlib.sha256(blob).hexdigest()[:8]}"

    def eps_for(self, attack: str) -> list[float]:
        return list(self.eps) if self.eps else list(get_attack(attack).default_eps)

    def expected_cells(self) -> set[str]:
        """Every cell the run computes: each model's clean cell and its attack x eps cells."""
        models = [display_name(spec) for spec in self.models]
        return {cell_id(m, "none", 0) for m in models} | {
            cell_id(m, a, e) for m in models for a in self.attacks for e in self.eps_for(a)}

    def differences(self, other: RunConfig) -> dict[str, tuple[Any, Any]]:
        """{setting: (this value, other's)} where the two configs compute different cells (eps
        left to the defaults or spelled out as them are the same run); empty if none."""
        def spelled(c: RunConfig) -> dict[str, Any]:
            return {**dataclasses.asdict(c), "eps": {a: c.eps_for(a) for a in c.attacks}}
        mine, theirs = spelled(self), spelled(other)
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> RunConfig:
        """The config a run's config.json records (fields older runs lack take the values
        they ran with: one set of passes, torchattacks as the backend)."""
        recorded = dict(meta["config"])
        recorded.setdefault("selection_draws", 0)
        recorded.setdefault("backend", "torchattacks")
        return cls(**recorded)


def run_complete(store: RunStore) -> bool:
    """Whether a run holds every cell its config computes (one still running does not)."""
    meta = store.read_meta()
    return meta is not None and RunConfig.from_meta(meta).expected_cells() <= store.done()


def resolved_params(config: RunConfig) -> dict[str, dict[str, Any]]:
    """Every attack's settings as the run uses them (its overrides on the defaults), JSON-plain."""
    return {a: json.loads(json.dumps(params_for(a, config.params))) for a in config.attacks}


def check_resumable(meta: dict[str, Any], config: RunConfig, label: str, batch_size: int,
                    unfinished: bool) -> None:
    """Refuse to resume a run under other settings: a different config, changed attack
    defaults, another batch size (it sets the random draws) or an older seeding scheme, which
    would mix two computations in one table."""
    differ = RunConfig.from_meta(meta).differences(config)
    if differ:
        shown = "; ".join(f"{k} {there!r} there, {asked!r} asked"
                          for k, (there, asked) in differ.items())
        raise ValueError(f"run directory {label} holds a different run ({shown}); a run resumes "
                         "only with the settings it was started with: remove it or choose "
                         "another directory")
    pinned = meta.get("attack_params") or {}
    for attack, params in resolved_params(config).items():
        if attack in pinned and pinned[attack] != params:
            raise ValueError(f"run directory {label} ran {attack} with {pinned[attack]}, the "
                             f"settings now give {params}; remove it to recompute")
    if not unfinished:
        return
    if meta.get("seeding") != SEEDING:
        raise ValueError(f"run directory {label} was computed with robbench's earlier "
                         f"{meta.get('seeding', 'sequential')} seeding; its finished cells stay "
                         "readable, but it cannot be resumed: remove it to recompute")
    if int(meta.get("batch_size", batch_size)) != batch_size:
        raise ValueError(f"run directory {label} crafts batches of {meta['batch_size']} "
                         f"images (they set its random draws); rerun with --batch-size "
                         f"{meta['batch_size']} or remove it to start over")
