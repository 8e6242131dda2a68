"""The gradient-masking diagnostics as a Markdown table."""

from __future__ import annotations

import pandas as pd


def format_table(frame: pd.DataFrame) -> str:
    """Markdown table with accuracies in percent and failures shouted."""
    shown = frame.copy()
    for col in ("accuracy", "ci_low", "ci_high", "reference"):
        shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{100 * v:.1f}%")
    shown["eps"] = shown["eps"].map(lambda v: "" if pd.isna(v) else f"{v:g}")
    shown["status"] = shown["status"].map(lambda s: "**FAIL**" if s == "FAIL" else s)
    return shown.to_markdown(index=False) + "\n"
