"""The gradient-masking diagnostics as a Markdown table, and the warning a vanishing gradient
earns."""

from __future__ import annotations

import pandas as pd

VANISHING_CHECK = "gradient not vanishing"


def vanishing_gradient_models(frame: pd.DataFrame) -> list[str]:
    """The models (by ``model``, else ``source``, else "the model") whose "gradient not
    vanishing" check FAILs."""
    if frame.empty or "check" not in frame:
        return []
    failed = frame[(frame["check"] == VANISHING_CHECK) & (frame["status"].astype(str).str.upper()
                                                          == "FAIL")]
    names = []
    for _, row in failed.iterrows():
        name = row.get("model", row.get("source", "the model"))
        names.append("the model" if pd.isna(name) else str(name))
    return list(dict.fromkeys(names))


def masking_warning(frame: pd.DataFrame) -> str:
    """A loud paragraph if a model's gradient vanishes, else "": its white-box rows are then
    upper bounds, and the remedy is BPDA (Athalye et al. 2018)."""
    names = vanishing_gradient_models(frame)
    if not names:
        return ""
    return (f"**WARNING: the gradient vanishes through {', '.join(names)} (diagnostic "
            f"\"{VANISHING_CHECK}\" FAILs): every white-box row of it is an UPPER BOUND on "
            "its robust accuracy, not a measurement. Wrap the non-differentiable step in "
            "`robbench.bpda(forward, backward)` (Athalye et al. 2018) and evaluate again.**\n")


def format_table(frame: pd.DataFrame) -> str:
    """Markdown table with accuracies in percent and failures shouted (a vanishing gradient
    with the warning under the table)."""
    shown = frame.copy()
    for col in ("accuracy", "ci_low", "ci_high", "reference"):
        shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{100 * v:.1f}%")
    shown["eps"] = shown["eps"].map(lambda v: "" if pd.isna(v) else f"{v:g}")
    shown["status"] = shown["status"].map(lambda s: "**FAIL**" if s == "FAIL" else s)
    warning = masking_warning(frame)
    return shown.to_markdown(index=False) + "\n" + (f"\n{warning}" if warning else "")
