"""The leaderboard: rendered from committed-format runs, and equal to its regeneration."""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from test_html_report import checked_page
from test_results_tables import fake_run

from robbench.cli import main
from robbench.report.leaderboard import (
    REFERENCE_RUN,
    coverage,
    diagnostics_summary,
    leaderboard_entries,
    leaderboard_frame,
    protocol_attacks,
)
from robbench.report.leaderboard_tables import (
    leaderboard_markdown,
    leaderboard_summary,
    leaderboard_warnings,
    write_leaderboard,
)
from robbench.report.tables import results_table
from robbench.studies.leaderboard_runs import DATASET_EPS, LeaderboardProtocol, merged_record

ROOT = Path(__file__).resolve().parents[1]
LABELS = [0, 1, 2, 3]


def _mark_random(run: Path, model: str) -> None:
    meta = json.loads((run / "config.json").read_text())
    meta["models"] = {model: {"detected": True, "stochastic": True}}
    (run / "config.json").write_text(json.dumps(meta))


@pytest.fixture
def board(tmp_path: Path) -> Path:
    """A repository with a ConvNet headline and one random defense's leaderboard runs."""
    headline = tmp_path / "results" / "digits" / "runs"
    fake_run(headline, "pgd", {("convnet", "none", 0.0): [[0, 1, 2, 3]],
                               ("convnet", "pgd", 0.1): [[9, 1, 2, 3]]}, LABELS)
    fake_run(headline, "fgsm", {("convnet", "fgsm", 0.1): [[0, 9, 2, 3]]}, LABELS)
    runs = tmp_path / "results" / "leaderboard" / "runs" / "digits" / "sap" / "first-4"
    # one-draw PGD leaves 3/4 of the draws correct; EOT-PGD fools examples 0 and 1 on every
    # pass, so the worst case is 2 of 4 examples, with an all-draws of 1/4 (example 3 only)
    pgd = fake_run(runs / "runs", "pgd", {
        ("sap", "none", 0.0): [[0, 1, 2, 3], [0, 1, 2, 3]],
        ("sap", "pgd", 0.1): [[0, 1, 2, 3], [9, 1, 9, 3]],
    }, LABELS, selection={("sap", "pgd", 0.1): [[0, 1, 2, 3], [0, 1, 9, 3]]})
    fake_run(runs / "runs", "eot-pgd", {("sap", "eot-pgd", 0.1): [[9, 9, 2, 3], [9, 9, 9, 3]]},
             LABELS, selection={("sap", "eot-pgd", 0.1): [[9, 9, 2, 3], [9, 9, 2, 3]]})
    _mark_random(pgd, "sap")
    diag = runs / "diagnostics" / "digits-sap"
    diag.mkdir(parents=True)
    pd.DataFrame([
        {"check": "monotone in eps", "attack": "eot-pgd", "eps": 0.1, "status": "PASS"},
        {"check": "gradient not vanishing", "attack": "eot-pgd", "eps": 0.1,
         "status": "FAIL"},
        {"check": "clean accuracy", "attack": "none", "eps": None, "status": "INFO"},
    ]).to_csv(diag / "diagnostics.csv", index=False)
    return tmp_path


def test_rows_give_naive_worst_case_and_what_naive_overstates(board: Path):
    entries = leaderboard_entries(board, "digits")
    assert [e.model for e in entries] == ["convnet", "sap"]
    frame = leaderboard_frame(entries, (0.1,)).set_index("model")
    conv, sap = frame.loc["convnet"], frame.loc["sap"]
    assert not conv["random"] and sap["random"]
    assert conv["pgd_expected"] == 0.75 and conv["worst_expected"] == 0.5  # per example
    assert sap["clean_expected"] == 1.0
    assert sap["pgd_expected"] == pytest.approx(6 / 8)
    # worst case: examples 0 and 1 by eot-pgd (its selection passes), 2 by pgd (selection 1/2
    # vs eot-pgd's 1), 3 survives: expected (0 + 0 + 1/2 + 1) / 4
    assert sap["worst_expected"] == pytest.approx(1.5 / 4)
    assert sap["worst_all_draws"] == pytest.approx(1 / 4)
    assert sap["overstated_expected"] == pytest.approx(6 / 8 - 1.5 / 4)
    assert sap["diagnostics"] == "1/2 PASS"
    assert sap["fails"] == "gradient not vanishing (eot-pgd, eps 0.1)"
    assert pd.isna(sap["aa_ref_expected"]) and sap["aa_ref_n"] == 0  # no reference run


def test_markdown_names_the_fail_warns_loudly_and_regenerates_equal(board: Path, capsys):
    written = write_leaderboard(board, "digits", (0.1,))
    md = (board / "results" / "leaderboard" / "digits.md").read_text()
    assert len(written) == 3 and "UPPER BOUND" in md and "robbench.bpda" in md
    assert "FAIL: gradient not vanishing" in md
    assert write_leaderboard(board, "digits", (0.1,), check=True) == []
    (board / "results" / "leaderboard" / "digits.csv").write_text("stale\n")
    assert main(["leaderboard", "--dataset", "digits", "--root", str(board), "--check"]) == 1
    assert "stale:" in capsys.readouterr().out


def _body_cells(markdown: str) -> list[str]:
    """The body cells of the one Markdown table in ``markdown`` (header and rule left out)."""
    rows = [line for line in markdown.splitlines() if line.startswith("|")][2:]
    return [cell.strip() for line in rows for cell in line.split("|")[1:-1]]


@pytest.mark.parametrize(("fails", "warned"), [
    ("binarization test (Zimmermann et al. 2022) (eot-pgd, eps 0.1); gradient not vanishing "
     "(pgd, eps 0.1)", True),
    ("binarization test (Zimmermann et al. 2022) (eot-pgd, eps 0.1)", False),
    ("", False)])
def test_the_warning_reads_the_failed_checks_whatever_their_names_hold(fails, warned):
    """A check whose name has parentheses of its own is still one check: the warning comes
    from "gradient not vanishing" alone."""
    frame = pd.DataFrame({"model": ["quantize"], "fails": [fails]})
    warnings = leaderboard_warnings(frame)
    assert len(warnings) == warned and all("quantize" in w for w in warnings)


def test_the_page_of_a_leaderboard_shows_what_its_markdown_shows(board: Path):
    _add_references(board)
    write_leaderboard(board, "digits", (0.1,))
    out = board / "results" / "leaderboard"
    assert main(["report", str(out / "digits.csv")]) == 0
    text = (out / "digits.html").read_text()
    assert checked_page(text).tables == 2
    page_cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", text)]
    # the summary, then every row; the CSV holds each number unrounded, so no cell differs
    expected = [c for name in ("digits-summary.md", "digits.md")
                for c in _body_cells((out / name).read_text())]
    assert page_cells == expected
    assert "<strong>WARNING: the gradient vanishes through sap" in text
    assert "<code>robbench.bpda(forward, backward)</code>" in text
    assert "<li><strong>overstated by</strong>: the higher naive number" in text


def _add_references(board: Path) -> None:
    """The authors' AutoAttack-rand: on sap's four images, fooling every pass of every example
    (lower than robbench's worst case, which it must not enter); on the ConvNet's first two
    images only, fooling none."""
    runs = board / "results" / "leaderboard" / "runs" / "digits"
    fake_run(runs / "sap" / "first-4" / "runs", REFERENCE_RUN,
             {("sap", "none", 0.0): [[0, 1, 2, 3], [0, 1, 2, 3]],
              ("sap", "autoattack-rand", 0.1): [[9, 9, 9, 9], [9, 9, 9, 9]]}, LABELS)
    fake_run(runs / "convnet" / "first-2" / "runs", REFERENCE_RUN,
             {("convnet", "none", 0.0): [[0, 1]],
              ("convnet", "autoattack-rand", 0.1): [[0, 1]]}, LABELS[:2])


def test_a_reference_run_still_running_leaves_the_complete_smaller_one_in_the_table(
        board: Path):
    """The authors' AutoAttack-rand on all images, begun (its clean cell only): the table keeps
    the finished first-4 run's column instead of dropping it."""
    _add_references(board)
    runs = board / "results" / "leaderboard" / "runs" / "digits" / "sap"
    started = fake_run(runs / "all" / "runs", REFERENCE_RUN,
                       {("sap", "none", 0.0): [[0, 1, 2, 3]]}, LABELS)
    meta = json.loads((started / "config.json").read_text())
    meta["config"]["attacks"], meta["config"]["eps"] = ["autoattack-rand"], [0.1]
    (started / "config.json").write_text(json.dumps(meta))
    frame = leaderboard_frame(leaderboard_entries(board, "digits"), (0.1,)).set_index("model")
    assert frame.loc["sap", "aa_ref_expected"] == 0.0 and frame.loc["sap", "aa_ref_n"] == 4


def test_an_attack_on_fewer_images_leaves_the_rows_on_all_and_is_named_missing(board: Path):
    """The headline ran Square on the ConvNet's first 2 images only (as the MNIST headline runs
    it on fewer): the rows stay on all 4 images, and the ConvNet's worst case there counts the
    attacks that covered them, naming Square as left out rather than silently dropping it."""
    fake_run(board / "results" / "digits" / "runs", "square",
             {("convnet", "square", 0.1): [[9, 1]]}, LABELS[:2])
    frame = leaderboard_frame(leaderboard_entries(board, "digits"), (0.1,)).set_index("model")
    conv = frame.loc["convnet"]
    assert (frame["n"] == 4).all()
    assert conv["worst_expected"] == 0.5 and conv["attacks"] == "fgsm+pgd"
    assert "square" in coverage(conv["attacks"], 0.1, False).split("w/o ")[1]


def test_a_defense_whose_diagnostics_have_not_run_is_left_out(board: Path):
    """Runs without diagnostics could be a masked gradient passing for robustness (quantization
    without BPDA keeps 99% under PGD): the defense waits for its diagnostics."""
    diag = board / "results/leaderboard/runs/digits/sap/first-4/diagnostics/digits-sap"
    (diag / "diagnostics.csv").unlink()
    assert [e.model for e in leaderboard_entries(board, "digits")] == ["convnet"]


def test_the_authors_autoattack_rand_is_a_naive_column_on_the_images_it_covers(board: Path):
    _add_references(board)
    entries = leaderboard_entries(board, "digits")
    frame = leaderboard_frame(entries, (0.1,)).set_index("model")
    conv, sap = frame.loc["convnet"], frame.loc["sap"]
    assert sap["aa_ref_expected"] == 0.0 and sap["aa_ref_n"] == 4
    assert sap["worst_expected"] == pytest.approx(1.5 / 4)  # not one of the protocol's attacks
    assert sap["overstated_expected"] == pytest.approx(6 / 8 - 1.5 / 4)  # PGD-40 is higher
    # the ConvNet's reference covers 2 of the 4 images: shown with its n, kept out of
    # "overstated by" (which compares numbers on the same images)
    assert conv["aa_ref_n"] == 2 and conv["aa_ref_expected"] == 1.0
    assert conv["overstated_expected"] == pytest.approx(0.75 - 0.5)
    md = leaderboard_markdown(frame.reset_index(), "digits")
    assert "100.0% [34.2, 100.0] (first 2)" in md


def test_the_summary_quotes_the_higher_naive_number_on_the_rows_images_and_the_verdict(
        board: Path):
    _add_references(board)
    frame = leaderboard_frame(leaderboard_entries(board, "digits"), (0.1,))
    text = leaderboard_summary(frame, "digits")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in text.splitlines()[4:]}
    assert text.startswith("First 4 test images, L∞ ε = 0.1.")
    # the ConvNet's reference covers two images only: the naive number is PGD-40's, unmarked;
    # both rows ran a few of the protocol's attacks: every worst case is marked as reduced
    assert rows["convnet"][1:] == ["75.0% → 50.0%‡ (+25.0)", "50.0%‡", "-"]
    assert rows["sap"][1].startswith("75.0% →") and rows["sap"][-1] == "1 FAIL"
    assert "‡ a reduced grid" in text.splitlines()[0]


def test_the_summary_marks_no_worst_case_of_the_full_protocol(board: Path):
    frame = leaderboard_frame(leaderboard_entries(board, "digits"), (0.1,))
    full = frame.assign(attacks="+".join(protocol_attacks(0.1, random=True) + ["autoattack"]))
    text = leaderboard_summary(full, "digits")
    assert "‡" not in text


def test_the_summary_has_one_row_per_model_and_names_n_where_rows_differ(board: Path):
    frame = leaderboard_frame(leaderboard_entries(board, "digits"), (0.1,))
    doubled = pd.concat([frame, frame.assign(eps=0.2)], ignore_index=True)
    doubled.loc[doubled.model == "convnet", "n"] = 8
    text = leaderboard_summary(doubled, "digits")
    header = text.splitlines()[2]
    assert [c.strip() for c in header.split("|")[1:-1]][:5] == [
        "model", "n", "clean", "ε = 0.1", "ε = 0.2"]
    assert text.startswith("The first n test images, L∞ ε = 0.1, 0.2.")
    body = text.splitlines()[4:]
    assert len(body) == frame.model.nunique()


def test_autoattack_standard_belongs_to_the_protocol_of_deterministic_models_only():
    assert coverage("pgd+autoattack", 0.1, random=False) == (
        "2/8, w/o fgsm, eot-pgd, apgd, autoattack-rand, square, transfer")
    assert coverage("pgd", 0.1, random=True) == (
        "1/7, w/o fgsm, eot-pgd, apgd, autoattack-rand, square, transfer")
    assert coverage("pgd", 0.2, random=False) == "1/4, w/o fgsm, eot-pgd, transfer"
    sap = LeaderboardProtocol("digits", "sap")
    assert "autoattack" not in sap.run_configs(random=True)
    assert sap.run_configs(random=False)["autoattack"].eps == [0.1]
    reference = sap.run_configs(random=True)[REFERENCE_RUN]
    assert (reference.attacks, reference.backend, reference.eps) == (
        ["autoattack-rand"], "autoattack", [0.1])


def test_a_baseline_runs_only_its_reference_its_protocol_is_the_headline():
    assert list(LeaderboardProtocol("mnist", "convnet").run_configs(random=False)) == [
        REFERENCE_RUN]
    with pytest.raises(ValueError, match="convnet's protocol runs are the digits headline's"):
        LeaderboardProtocol("digits", "convnet", attacks=("pgd",))


def test_bad_values_are_one_line_errors(tmp_path: Path, capsys):
    assert main(["leaderboard", "--dataset", "mnist", "--root", str(tmp_path)]) == 2
    assert "no committed runs for dataset 'mnist'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="leaderboard attack 'cw' is unknown"):
        LeaderboardProtocol("digits", "sap", attacks=("cw",))


@pytest.mark.parametrize("dataset", [d for d in DATASET_EPS
                                     if (ROOT / "results" / "leaderboard" / f"{d}.md").is_file()])
def test_every_committed_leaderboard_equals_its_regeneration(dataset):
    assert write_leaderboard(ROOT, dataset, DATASET_EPS[dataset], check=True) == []


def test_a_run_table_beside_a_vanishing_gradient_says_its_rows_are_upper_bounds(board: Path):
    """``robbench table`` on a run whose diagnostics.csv (next to it) has the vanishing-gradient
    FAIL: the warning opens the Markdown and is a row of the CSV."""
    run = board / "results" / "leaderboard" / "runs" / "digits" / "sap" / "first-4" / "runs"
    diag = run.parent / "diagnostics" / "digits-sap" / "diagnostics.csv"
    (run / "diagnostics.csv").write_text(diag.read_text())
    md = results_table([run / "pgd"], "md")
    assert md.startswith("**WARNING: the gradient vanishes through") and "UPPER BOUND" in md
    assert "robbench.bpda" in md
    csv = pd.read_csv(io.StringIO(results_table([run / "pgd"], "csv")))
    assert (csv["section"] == "warning").sum() == 1


def test_a_call_running_some_attacks_keeps_the_others_in_the_protocol_record(tmp_path: Path):
    """`--attacks autoattack-rand-reference` after the protocol: protocol.json still names the
    protocol's attacks and their seconds, beside the new run's."""
    path = tmp_path / "protocol.json"
    first = {"protocol": {"attacks": ["pgd", "fgsm"]}, "seconds": {"pgd": 3.0, "fgsm": 1.0}}
    path.write_text(json.dumps(first))
    later = {"protocol": {"attacks": [REFERENCE_RUN]}, "seconds": {REFERENCE_RUN: 9.0}}
    merged = merged_record(path, later)
    assert merged["protocol"]["attacks"] == ["pgd", "fgsm", REFERENCE_RUN]
    assert merged["seconds"] == {"pgd": 3.0, "fgsm": 1.0, REFERENCE_RUN: 9.0}
    rerun = merged_record(path, {"protocol": {"attacks": ["pgd"]}, "seconds": {"pgd": 4.0}})
    assert rerun["seconds"]["pgd"] == 4.0 and rerun["protocol"]["attacks"] == ["pgd", "fgsm"]
    assert merged_record(tmp_path / "none.json", later) is later


def test_an_inconclusive_active_test_is_named_beside_the_pass_count(tmp_path):
    rows = [{"check": "clean accuracy", "attack": "none", "eps": 0.0, "status": "INFO",
             "detail": ""},
            {"check": "worst case", "attack": "eot-pgd", "eps": 0.1, "status": "PASS",
             "detail": ""},
            {"check": "binarization test (Zimmermann et al. 2022)", "attack": "eot-pgd",
             "eps": 0.1, "status": "INFO",
             "detail": "inconclusive: no valid construction (5 not separable)"}]
    path = tmp_path / "diagnostics.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    assert diagnostics_summary(path, "m") == ("1/1 PASS, binarization test inconclusive", "")
    pd.DataFrame(rows[:2]).to_csv(path, index=False)
    assert diagnostics_summary(path, "m") == ("1/1 PASS", "")
