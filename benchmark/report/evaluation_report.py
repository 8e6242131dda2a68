"""What ``robbench.evaluate`` returns: the runs' records as tables, and their outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from robbench.records.store import RunStore, cell_id
from robbench.report.diagnostics_table import format_table, masking_warning
from robbench.report.tables import results_table, worst_case_summary


@dataclass
class Report:
    """An evaluation's results.

    ``summary`` has one row per cell (model, attack, eps) with the columns of summary.csv
    (``stochastic`` says whether the model was evaluated as random); ``worst_case`` the clean
    and per-example worst-case rows per norm and eps (as worst_case.md); ``diagnostics`` the
    gradient-masking checklist per model, when asked for; :meth:`outcomes` a cell's
    per-example predictions.
    """

    runs: list[RunStore]
    diagnostics: dict[str, pd.DataFrame] | None = None
    all_draws_at: Sequence[int] = field(default_factory=tuple)

    @property
    def summary(self) -> pd.DataFrame:
        """One row per cell: the columns of summary.csv, every metric and its interval."""
        return pd.concat([run.summary() for run in self.runs], ignore_index=True)

    @property
    def worst_case(self) -> pd.DataFrame:
        """Clean accuracy and the per-example worst case per norm and eps, models side by
        side (a headline's worst_case.md)."""
        return worst_case_summary(self.runs, self.all_draws_at)

    def outcomes(self, model: str, attack: str, eps: float = 0.0) -> dict[str, np.ndarray]:
        """Per-example outcomes of one cell: index, label, pred (R, N), sel_pred, norm, ..."""
        key = cell_id(model, attack, eps)
        for run in self.runs:
            if key in run.done():
                return run.outcomes(key)
        raise KeyError(f"no cell {key}; cells: "
                       f"{', '.join(sorted(k for r in self.runs for k in r.done()))}")

    def to_markdown(self) -> str:
        """Every attack's row, the worst case and (if run) the diagnostics, as Markdown."""
        text = results_table(self.runs, "md", all_draws_at=self.all_draws_at)
        warnings = [masking_warning(frame.assign(model=name))
                    for name, frame in (self.diagnostics or {}).items()]
        text = "".join(f"{w}\n" for w in warnings if w) + text
        for name, frame in (self.diagnostics or {}).items():
            text += f"\nDiagnostics of {name}:\n\n{format_table(frame)}"
        return text

    def __str__(self) -> str:
        return self.to_markdown()
