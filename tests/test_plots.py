"""`robbench plot`: the four kinds of figure, PNG and SVG, from a tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_in

from robbench.cli import main
from robbench.report.figure_style import MODEL_COLORS, model_color
from robbench.report.plots import plot_accuracy_vs_eps
from robbench.runs.config import RunConfig

KINDS = ("accuracy_vs_eps", "adversarial_examples", "samples", "langevin_trajectory")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = RunConfig(models=["convnet", "shortrun"], attacks=["fgsm"], eps=[0.1, 0.2], n=16,
                       draws=2)
    run_dir, _ = run_in(config, tmp_path_factory.mktemp("runs") / "run")
    return run_dir


def test_plot_writes_every_figure_as_png_and_svg(tiny_run: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "figs"
    assert main(["plot", str(tiny_run), "--out", str(out)]) == 0
    assert "written:" in capsys.readouterr().out
    for kind in KINDS:
        png, svg = out / f"{kind}.png", out / f"{kind}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
        assert "<svg" in svg.read_text()[:2000]
    accuracy = (out / "accuracy_vs_eps.svg").read_text()
    for text in ("Robust accuracy vs eps", "robust accuracy (95% interval)",
                 "ConvNet - fgsm", "Short Run - fgsm", MODEL_COLORS["shortrun"]):
        assert text in accuracy
    examples = (out / "adversarial_examples.svg").read_text()
    assert "adv. vs ConvNet" in examples and "adv. vs Short Run" in examples
    assert "perturbation" in examples
    trajectory = (out / "langevin_trajectory.svg").read_text()
    assert "k = 0..20" in trajectory and "Langevin step k" in trajectory  # shipped K = 20


def test_plot_merges_runs_and_keeps_model_colours(tiny_run: Path, tmp_path: Path) -> None:
    import pandas as pd

    from robbench.records.store import read_summary
    from robbench.report.worst_case import worst_case_frame

    summary = pd.concat([read_summary(tiny_run)] * 2, ignore_index=True)
    written = plot_accuracy_vs_eps(summary, tmp_path, worst_case_frame([tiny_run, tiny_run]))
    assert [p.name for p in written] == ["accuracy_vs_eps.png", "accuracy_vs_eps.svg"]
    svg = written[1].read_text()
    assert MODEL_COLORS["convnet"] in svg and MODEL_COLORS["shortrun"] in svg
    assert model_color("convnet") != model_color("shortrun")
    assert model_color("other") == model_color("other")


def test_plot_rejects_a_non_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path) in err


def test_a_redrawn_figure_is_byte_identical(tiny_run: Path, tmp_path: Path) -> None:
    from robbench.records.store import read_summary

    summary = read_summary(tiny_run)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = plot_accuracy_vs_eps(summary, tmp_path / "a")
    second = plot_accuracy_vs_eps(summary, tmp_path / "b")
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert "<dc:date>" not in first[1].read_text()
