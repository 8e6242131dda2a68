"""The report's figures, drawn by robbench's matplotlib code and embedded as PNG data URIs, so
that the page needs no file beside it."""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from robbench.records.store import DirectoryStore
from robbench.report.figures import plot_stored_adversarials
from robbench.report.plots import plot_accuracy_vs_eps
from robbench.report.worst_case import worst_case_frame


@dataclass
class EmbeddedFigure:
    """A figure as the page shows it: its image as a data URI, or why there is none."""

    title: str
    alt: str
    uri: str | None = None
    missing: str = ""


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def drawn_png(draw: Callable[[Path], list[Path]]) -> str:
    """Run a plotting function that writes into a directory; its PNG as a data URI."""
    with tempfile.TemporaryDirectory() as tmp:
        (png,) = [p for p in draw(Path(tmp)) if p.suffix == ".png"]
        return png_data_uri(png)


def accuracy_figure(stores: Sequence[DirectoryStore]) -> EmbeddedFigure:
    """Robust accuracy against eps, every attack and the worst case (``robbench plot``'s)."""
    figure = EmbeddedFigure("Robust accuracy against ε",
                            "Robust accuracy against eps per model and attack, with 95% "
                            "intervals and the per-example worst case")
    summary = pd.concat([s.summary() for s in stores], ignore_index=True)
    try:
        figure.uri = drawn_png(lambda out: plot_accuracy_vs_eps(summary, out,
                                                                worst_case_frame(stores)))
    except ValueError as exc:
        figure.missing = str(exc)
    return figure


def example_cell(stores: Sequence[DirectoryStore]) -> tuple[DirectoryStore, str, float] | None:
    """The run, attack and eps whose kept adversarial images the report shows: the first
    run's first attack at its smallest finished eps (where models differ most)."""
    for store in stores:
        records = [r for r in store.records() if r["attack"] != "none" and not r.get("skipped")]
        if records:
            first = (store.read_meta() or {}).get("config", {}).get("attacks", [None])[0]
            chosen = [r for r in records if r["attack"] == first] or records
            attack = chosen[0]["attack"]
            return store, attack, min(float(r["eps"]) for r in chosen if r["attack"] == attack)
    return None


def adversarial_figure(stores: Sequence[DirectoryStore]) -> EmbeddedFigure:
    """A grid of the adversarial images a run kept, with the predictions it recorded."""
    figure = EmbeddedFigure("Adversarial examples",
                            "Adversarial images kept by the run, one row per model, each "
                            "titled with its label and recorded prediction")
    cell = example_cell(stores)
    if cell is None:
        figure.missing = "no attacked cell has finished"
        return figure
    store, attack, eps = cell
    figure.title += f": {attack}, ε = {eps:g}"
    try:
        figure.uri = drawn_png(lambda out: plot_stored_adversarials(store, out, attack, eps))
    except ValueError as exc:
        figure.missing = str(exc)
    return figure
