"""Comparison tables: models side by side, attacks and eps as rows (Markdown, CSV, LaTeX)."""

from __future__ import annotations

import pandas as pd

FORMATS = ("md", "csv", "latex")


def format_accuracy(row: pd.Series) -> str:
    return f"{100 * row['accuracy']:.1f}% [{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]"


def comparison_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, attack, norm, eps, steps, eot), one column per model."""
    if summary.empty:
        return pd.DataFrame()
    frame = summary.copy()
    frame["cell"] = frame.apply(format_accuracy, axis=1)
    frame["eot"] = frame.groupby(["dataset", "attack", "eps"])["eot"].transform("max")
    index = ["dataset", "attack", "norm", "eps", "steps", "eot"]
    wide = frame.pivot_table(index=index, columns="model", values="cell", aggfunc="first")
    wide = wide.reset_index()
    wide.columns.name = None
    order = {"none": 0}
    wide["_order"] = wide["attack"].map(lambda a: order.get(a, 1))
    wide = wide.sort_values(["dataset", "_order", "attack", "eps"]).drop(columns="_order")
    return wide.reset_index(drop=True)


def comparison_table(summary: pd.DataFrame, fmt: str = "md") -> str:
    """Render the side-by-side comparison of a summary frame in ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is unknown; allowed: {', '.join(FORMATS)}")
    wide = comparison_frame(summary)
    if wide.empty:
        return "(no finished cells)\n"
    if fmt == "csv":
        return wide.to_csv(index=False)
    if fmt == "latex":
        return wide.to_latex(index=False, escape=True)
    return wide.to_markdown(index=False) + "\n"
