"""`robbench report`: one self-contained HTML page of a run, a headline or a leaderboard."""

from __future__ import annotations

import html
import json
import re
import shlex
import shutil
from pathlib import Path

import pandas as pd
import pytest
from html_page import Page

from robbench.cli import build_parser, main
from robbench.cli.run_commands import run_config
from robbench.cli.values import attack_sizes
from robbench.records.store import DirectoryStore
from robbench.report.diagnostics_table import FAILURE_MEANINGS, failure_meanings_markdown
from robbench.report.html_report import render_report
from robbench.report.regenerating_commands import headline_command
from robbench.runs.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
EVALUATION_SECTIONS = ["provenance", "worst-case", "attacks", "diagnostics", "accuracy-figure",
                       "examples", "commands", "missing"]
DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """PGD-2 on the first 8 digits test images, both shipped models, two eps."""
    out = tmp_path_factory.mktemp("report") / "run"
    assert main(["run", "--attack", "pgd", "--n", "8", "--steps", "2", "--step-size", "0.05",
                 "--draws", "3", "--selection-draws", "2", "--eps", "0.1,0.3", "--run-dir",
                 str(out), "--quiet"]) == 0
    return out


def checked_page(text: str) -> Page:
    """The page parsed; it must be well formed and fetch nothing."""
    page = Page(text)
    assert page.doctype.lower() == "doctype html"
    assert page.errors == []
    assert page.external == []
    assert all(img["src"].startswith("data:image/png;base64,") and img["alt"]
               for img in page.images)
    return page


def test_run_report_has_every_section_in_order_with_figures_inline(run_dir, capsys):
    assert main(["report", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == f"written: {run_dir / 'report.html'}"
    text = (run_dir / "report.html").read_text()
    page = checked_page(text)
    sections = [i for i in page.ids if i in EVALUATION_SECTIONS]
    assert sections == EVALUATION_SECTIONS  # every section, in the order
    assert len(page.images) == 2  # accuracy against eps and the adversarial examples
    assert page.tables == 4  # models, runs, worst case, every attack (no diagnostics run)
    meta = DirectoryStore(run_dir).read_meta()
    for sha in (c["sha256"] for c in meta["checkpoints"].values()):
        assert sha in text
    assert "two passes found it random; treated as random" in text
    assert "Short Run is random: quote its all-draws accuracy" in text
    assert "ConvNet is deterministic" in text
    assert "None: every cell the runs set out to compute has finished." in text
    assert "<script src" not in text and "<link" not in text


def test_the_regenerating_command_is_the_run_it_reports(run_dir):
    text = render_report(run_dir)
    command = re.search(r"<pre><code>(robbench run [^<]+)</code></pre>", text)[1]
    args = build_parser().parse_args(shlex.split(html.unescape(command))[1:])
    meta = DirectoryStore(run_dir).read_meta()
    assert run_config(args).run_id() == RunConfig.from_meta(meta).run_id()
    assert args.run_dir == str(run_dir)


def test_an_unfinished_run_names_its_missing_cells(run_dir, tmp_path):
    partial = tmp_path / "partial-run"
    shutil.copytree(run_dir, partial)
    for suffix in ("json", "npz"):
        (partial / "cells" / f"shortrun__pgd__0.3.{suffix}").unlink()
    text = render_report(partial)
    checked_page(text)
    assert "<strong>Unfinished:</strong> 1 cell(s) missing" in text
    assert "<li>partial-run: shortrun / pgd / 0.3 (stopped)</li>" in text


def test_a_run_with_no_attacked_cell_yet_says_so_everywhere(run_dir, tmp_path):
    started = tmp_path / "started"
    shutil.copytree(run_dir, started, ignore=shutil.ignore_patterns("*pgd*", "report.html"))
    (started / "partial").mkdir()  # crafted batches kept: a run in progress
    text = render_report(started)
    page = checked_page(text)
    assert page.images == [] and "No attacked cell has finished yet." in text
    assert "No figure: no attacked cell has finished." in text
    assert "<strong>Unfinished:</strong> 4 cell(s) missing" in text
    assert "<li>started: convnet / pgd / 0.1 (in progress or stopped; crafted batches kept)</li>" \
        in text


def test_every_fail_is_explained_and_marked_beyond_colour(run_dir, tmp_path):
    diagnosed = tmp_path / "diagnosed"
    shutil.copytree(run_dir, diagnosed)
    source = ROOT / "results" / "digits" / "diagnostics" / "digits-shortrun" / "diagnostics.csv"
    frame = pd.read_csv(source)
    failing = frame.index[frame["check"] == "gradient not vanishing"][0]
    frame.loc[failing, "status"] = "FAIL"
    (diagnosed / "diagnostics" / "shortrun").mkdir(parents=True)
    frame.to_csv(diagnosed / "diagnostics" / "shortrun" / "diagnostics.csv", index=False)
    text = render_report(diagnosed)
    page = checked_page(text)
    assert page.tables == 5
    passed = int((frame["status"] == "PASS").sum())
    assert f"✔ {passed} PASS" in text and "✘ 1 FAIL" in text
    meaning = next(m for m in FAILURE_MEANINGS if m.check == "gradient not vanishing")
    assert "✘ FAIL: gradient not vanishing (eot-pgd at ε = 0.1)" in text
    assert f"What it means: {meaning.means}." in text
    assert f"What to do: {meaning.to_do}." in text
    assert text.count('<tr class="fail">') == 1
    assert text.count('<td class="fail">✘ FAIL</td>') == 1
    assert text.count('<td class="pass">✔ PASS</td>') == passed


def test_docs_quote_the_failure_meanings_the_report_uses():
    assert failure_meanings_markdown() in (ROOT / "docs" / "protocol.md").read_text()


def test_a_leaderboard_csv_is_a_sortable_table_of_its_columns(tmp_path):
    board = tmp_path / "digits.csv"
    pd.DataFrame({"rank": [1, 2], "model": ["shortrun", "convnet"],
                  "worst case linf 0.1": ["75.7% [72.6, 78.9]", "43.1% [38.3, 48.0]"]}
                 ).to_csv(board, index=False)
    assert main(["report", str(board)]) == 0
    text = (tmp_path / "digits.html").read_text()
    page = checked_page(text)
    assert "leaderboard" in page.ids and "commands" in page.ids and page.tables == 1
    assert '<table class="sortable ">' in text
    assert "<th scope=\"col\">worst case linf 0.1</th>" in text
    assert "<tr><td>1</td><td>shortrun</td><td>75.7% [72.6, 78.9]</td></tr>" in text


@pytest.mark.parametrize("given", ["nowhere", "README.md"])
def test_a_path_that_is_not_reportable_is_a_one_line_error(given, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(ROOT / given), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"cannot report on '{ROOT / given}'" in err
    assert "run directory (holds cells/)" in err and "leaderboard (a .csv file)" in err
    assert not out.exists()


def masked(text: str) -> str:
    """The page with its figures' bytes left out (they depend on the matplotlib build)."""
    return DATA_URI.sub("data:image/png;base64,...", text)


@pytest.mark.parametrize("dataset", [
    "digits", pytest.param("mnist", marks=pytest.mark.slow),
    pytest.param("fashion-mnist", marks=pytest.mark.slow)])
def test_committed_headline_reports_are_their_regeneration(dataset, monkeypatch):
    """results/<dataset>/report.html is what `robbench report results/<dataset>` writes:
    every table and sentence equal, the same number of embedded figures."""
    committed = ROOT / "results" / dataset / "report.html"
    path = Path("results") / dataset
    monkeypatch.chdir(ROOT)  # the page names the paths as given, here from the repository
    fresh = render_report(path)
    text = committed.read_text()
    page = checked_page(text)
    assert [i for i in page.ids if i in EVALUATION_SECTIONS] == EVALUATION_SECTIONS
    assert len(page.images) == 2
    assert masked(fresh) == masked(text)
    record = json.loads((ROOT / path / "headline.json").read_text())
    assert f"robbench headline --dataset {dataset}" in text
    assert record["config"]["attacks"][0] in text


@pytest.mark.parametrize("dataset", ["digits", "mnist", "fashion-mnist"])
def test_the_headline_command_asks_for_the_recorded_settings(dataset):
    record = json.loads((ROOT / "results" / dataset / "headline.json").read_text())
    command = headline_command(record, f"results/{dataset}")
    args = build_parser().parse_args(shlex.split(command)[1:])
    config = record["config"]
    asked = {"dataset": args.dataset, "models": args.model, "n": args.n, "n_eot": args.n_eot,
             "draws": args.draws, "selection_draws": args.selection_draws, "eot": args.eot,
             "seed": args.seed, "attacks": args.attacks.split(","),
             "n_attack": attack_sizes(args.n_attack) if args.n_attack else {}}
    assert asked == {k: config[k] for k in asked}
    assert args.diagnostics_n == config["diagnostics"]["n"] and args.out == f"results/{dataset}"
