"""The gradient-masking diagnostics as a Markdown table, and what each check's FAIL means.

``FAILURE_MEANINGS`` is the one place the explanation of a FAIL is written: docs/protocol.md
quotes :func:`failure_meanings_markdown` verbatim (a test compares them) and the HTML report
explains every FAIL row with :func:`failure_meaning`. A vanishing gradient also earns a loud
warning under every table that shows it (:func:`masking_warning`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class FailureMeaning:
    """A check of Carlini et al. (2019), the row names it covers, what a FAIL means, what to
    do about it."""

    check: str
    rows: tuple[str, ...]  # prefixes of the ``check`` column of diagnostics.csv
    means: str
    to_do: str


FAILURE_MEANINGS = (
    FailureMeaning(
        "accuracy non-increasing in ε", ("accuracy vs eps", "non-increasing in eps"),
        "a larger budget helped the model: the attack is not converging, every number is an "
        "upper bound at best",
        "run more steps and restarts (`--steps`, `--restarts`) and, for a random model, more "
        "EOT draws (`--eot auto`) until accuracy falls with ε"),
    FailureMeaning(
        "large ε reaches ≤ 5%", ("large eps",),
        "at ε = 0.5 or 1 any image can be turned into any other; an attack that cannot get "
        "there is failing (masked or vanishing gradients), not meeting a robust model",
        "attack through every random step with EOT, replace a non-differentiable step by a "
        "differentiable approximation (BPDA), and add the gradient-free `square`"),
    FailureMeaning(
        "convergence in steps and EOT draws", ("convergence",),
        "more steps or more draws lowered accuracy beyond the interval: the attack was too "
        "weak; the EOT ladder is `--eot auto`'s, and its row names the M chosen",
        "rerun the attacks with the steps and draws of the last rung (or `--eot auto`) and "
        "quote those numbers"),
    FailureMeaning(
        "black-box (`square`), `transfer`, `latent-pgd`, `fixed-noise-pgd` not stronger than "
        "EOT-PGD", ("not stronger than white-box",),
        "a gradient-free or indirect attack beating the white-box one is the signature of "
        "gradient masking; the worst case then uses it, and the row says so",
        "quote the per-example worst case, which includes that attack, and find out why the "
        "gradient misleads before trusting any white-box number"),
    FailureMeaning(
        "gradient not vanishing", ("gradient not vanishing",),
        "the input gradient is (near) zero or the loss does not rise per step: white-box "
        "numbers mean nothing until the gradient is repaired (e.g. BPDA)",
        "repair the gradient (BPDA, Athalye et al. 2018) or rely on gradient-free and "
        "transfer attacks until it is"),
    FailureMeaning(
        "binarization test (Zimmermann et al. 2022)", ("binarization test",),
        "the attack failed, too often, on modified models of this model for which an "
        "adversarial example within ε exists by construction: it is too weak for this model",
        "strengthen the attack until it passes (more steps, more EOT draws, another loss, "
        "BPDA through a non-differentiable step) and quote that attack's numbers"),
)


def failure_meaning(check: str) -> FailureMeaning | None:
    """The explanation of a FAIL of the diagnostics row named ``check`` (None: not a check
    that can fail)."""
    for meaning in FAILURE_MEANINGS:
        if check.startswith(meaning.rows):
            return meaning
    return None


def failure_meanings_markdown() -> str:
    """The table of docs/protocol.md's "Reading the diagnostics"."""
    lines = ["| check | what a FAIL means for the claimed robustness | what to do |",
             "| --- | --- | --- |"]
    lines += [f"| {m.check} | {m.means} | {m.to_do} |" for m in FAILURE_MEANINGS]
    return "\n".join(lines) + "\n"


def formatted_diagnostics(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of diagnostics.csv as shown: accuracies in percent, eps as given."""
    shown = frame.copy()
    for col in ("accuracy", "ci_low", "ci_high", "reference"):
        shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{100 * v:.1f}%")
    shown["eps"] = shown["eps"].map(lambda v: "" if pd.isna(v) else f"{v:g}")
    return shown


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
    shown = formatted_diagnostics(frame)
    shown["status"] = shown["status"].map(lambda s: "**FAIL**" if s == "FAIL" else s)
    warning = masking_warning(frame)
    return shown.to_markdown(index=False) + "\n" + (f"\n{warning}" if warning else "")
