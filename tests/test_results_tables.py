"""`robbench table`: merged runs, per-example worst case over attacks, diagnostics pass/fail."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_in

from robbench.cli import main
from robbench.records.scoring import accuracy_fields, wilson_interval
from robbench.records.store import DirectoryStore, read_summary
from robbench.report.tables import results_frames, results_table
from robbench.report.worst_case import WORST_CASE, every_attack_rows, worst_case_frame
from robbench.runs.config import RunConfig


def fake_run(root: Path, name: str, cells: dict[tuple[str, str, float], list[list[int]]],
             labels: list[int], selection: dict[tuple[str, str, float], list[list[int]]]
             | None = None) -> Path:
    """A run directory with hand-made per-example predictions (R draws x N) per cell, and
    for cells named in ``selection`` their selection passes."""
    run = root / name
    store = DirectoryStore(run)
    y = np.array(labels)
    for (model, attack, eps), pred in cells.items():
        preds = np.array(pred)
        record = {"dataset": "digits", "model": model, "checkpoint": "x", "attack": attack,
                  "backend": "robbench", "norm": "none" if attack == "none" else "linf",
                  "eps": eps, "steps": 1, "eot": 1, "draws": len(pred), "seed": 0,
                  **accuracy_fields(preds, y), "seconds": 0.0, "version": "test"}
        outcomes = {"index": np.arange(len(y)), "label": y, "pred": preds,
                    "norm": np.zeros(len(y), dtype=np.float32)}
        if selection and (model, attack, eps) in selection:
            outcomes["sel_pred"] = np.array(selection[(model, attack, eps)])
            record.update(scoring="disjoint", stochastic=True)
        store.write_cell(f"{model}__{attack}__{eps:g}", record, outcomes)
    models = list(dict.fromkeys(m for m, _, _ in cells))
    attacks = list(dict.fromkeys(a for _, a, _ in cells if a != "none")) or ["pgd"]
    eps = sorted({e for _, a, e in cells if a != "none"}) or [0.1]
    # the config of the cells given: a run holding all of them is complete
    (run / "config.json").write_text(json.dumps({"config": {
        "dataset": "digits", "models": models, "attacks": attacks, "eps": eps}}))
    return run


LABELS = [0, 1, 2, 3]


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    # deterministic convnet: fgsm fools example 3, pgd fools example 0 -> worst case 2/4,
    # although each attack alone leaves 3/4 (the minimum of accuracies would say 0.75)
    a = fake_run(tmp_path, "a", {
        ("convnet", "none", 0.0): [[0, 1, 2, 3]],
        ("convnet", "fgsm", 0.1): [[0, 1, 2, 9]],
        ("shortrun", "none", 0.0): [[0, 1, 2, 3], [0, 1, 2, 3]],
        ("shortrun", "fgsm", 0.1): [[0, 1, 9, 3], [0, 9, 9, 3]],
    }, LABELS)
    b = fake_run(tmp_path, "b", {
        ("convnet", "pgd", 0.1): [[9, 1, 2, 3]],
        ("shortrun", "pgd", 0.1): [[0, 1, 2, 9], [0, 1, 2, 3]],
    }, LABELS)
    return [a, b]


def test_worst_case_is_per_example_across_merged_runs(runs: list[Path]) -> None:
    worst = worst_case_frame(runs).set_index("model")
    assert worst.loc["convnet", "accuracy"] == pytest.approx(0.5)
    # shortrun fraction of correct draws: fgsm [1, .5, 0, 1], pgd [1, 1, 1, .5] -> min mean .5
    assert worst.loc["shortrun", "accuracy"] == pytest.approx(0.5)
    assert worst.loc["convnet", "attacks"] == "fgsm+pgd"
    low, high = wilson_interval(2, 4)
    assert (worst.loc["convnet", "ci_low"], worst.loc["convnet", "ci_high"]) == (low, high)
    per_attack = pd.concat([read_summary(r) for r in runs])
    fgsm = per_attack[(per_attack["model"] == "convnet") & (per_attack["attack"] == "fgsm")]
    assert fgsm["accuracy"].item() == pytest.approx(0.75)


def test_table_merges_runs_with_worst_case_rows(runs: list[Path]) -> None:
    wide, diag = results_frames(runs)
    assert diag.empty
    assert list(wide["attack"]) == ["none", "fgsm", "pgd", WORST_CASE]
    assert {"convnet", "shortrun"} <= set(wide.columns)
    assert wide.loc[wide["attack"] == WORST_CASE, "convnet"].item().startswith("50.0% [")
    csv = results_table(runs, "csv")
    assert csv.splitlines()[0].startswith("section,dataset,attack")
    latex = results_table(runs, "latex")
    assert "\\begin{tabular}" in latex and "worst case" in latex


def test_diagnostics_pass_fail_merged_when_present(runs: list[Path]) -> None:
    pd.DataFrame({"check": ["monotone in eps", "eps=1 reaches 0%"], "model": ["shortrun"] * 2,
                  "status": ["PASS", "fail"], "detail": ["ok", "acc 0.3"]}).to_csv(
        runs[0] / "diagnostics.csv", index=False)
    text = results_table(runs, "md")
    assert "Diagnostics (gradient masking): 1 PASS, 1 FAIL" in text
    assert any(line.split("|")[3:5] == [" eps=1 reaches 0% ", " FAIL     "]
               for line in text.splitlines())
    csv = pd.read_csv(pd.io.common.StringIO(results_table(runs, "csv")))
    assert set(csv["section"]) == {"accuracy", "diagnostics"}


def test_diagnostics_file_given_explicitly(runs: list[Path], tmp_path: Path) -> None:
    diag = tmp_path / "digits-shortrun" / "diagnostics.csv"
    diag.parent.mkdir()
    pd.DataFrame({"check": ["accuracy vs eps"], "attack": ["eot-pgd"], "eps": [0.1],
                  "accuracy": [0.74250001], "status": ["PASS"]}).to_csv(diag, index=False)
    out = tmp_path / "t.md"
    assert main(["table", *map(str, runs), "--diagnostics", str(diag), "--out", str(out)]) == 0
    text = out.read_text()
    assert "1 PASS, 0 FAIL" in text and "digits-shortrun" in text and "0.743" in text


def test_cli_table_writes_file_and_rejects_bad_values(runs: list[Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "table.md"
    assert main(["table", *map(str, runs), "--out", str(out)]) == 0
    assert "worst case" in out.read_text()
    assert main(["table", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope" in err and "run directory" in err
    with pytest.raises(SystemExit):
        main(["table", str(runs[0]), "--format", "html"])
    assert "invalid choice: 'html'" in capsys.readouterr().err


def test_table_from_a_tiny_real_run(tmp_path: Path) -> None:
    config = RunConfig(models=["convnet"], attacks=["fgsm", "pgd"], eps=[0.1], n=12, draws=1,
                       params={"steps": 2})
    run_dir, _ = run_in(config, tmp_path / "run")
    text = results_table([run_dir], "md")
    rows = [line for line in text.splitlines() if line.startswith("| digits")]
    assert [r.split("|")[2].strip() for r in rows] == ["none", "fgsm", "pgd", WORST_CASE]


def test_worst_case_per_size_when_an_attack_covered_fewer_examples(runs: list[Path],
                                                                   tmp_path: Path) -> None:
    # square ran on the first two examples only and fools convnet example 1
    c = fake_run(tmp_path, "c", {("convnet", "square", 0.1): [[0, 9]],
                                 ("shortrun", "square", 0.1): [[0, 1], [0, 1]]}, [0, 1])
    worst = worst_case_frame([*runs, c])
    convnet = worst[worst.model == "convnet"].set_index(["without", "n"])
    assert sorted(convnet.index) == [("", 2), ("square", 2), ("square", 4)]
    # every attack on the two examples square covered: pgd fools 0, square fools 1
    assert convnet.loc[("", 2), "attacks"] == "fgsm+pgd+square"
    assert convnet.loc[("", 2), "accuracy"] == pytest.approx(0.0)
    # the others on all four examples: as without square
    assert convnet.loc[("square", 4), "attacks"] == "fgsm+pgd"
    assert convnet.loc[("square", 4), "accuracy"] == pytest.approx(0.5)
    # the others on square's two examples: what square adds there (example 1)
    assert convnet.loc[("square", 2), "attacks"] == "fgsm+pgd"
    assert convnet.loc[("square", 2), "accuracy"] == pytest.approx(0.5)
    wide, _ = results_frames([*runs, c])
    rows = wide[wide.attack.str.startswith(WORST_CASE)]
    assert list(zip(rows.attack, rows.n, rows.convnet, strict=True)) == [
        (WORST_CASE, 2, "0.0% [0.0, 65.8]"),
        (f"{WORST_CASE} w/o square", 2, "50.0% [9.5, 90.5]"),
        (f"{WORST_CASE} w/o square", 4, "50.0% [15.0, 85.0]"),
    ]


def test_a_size_only_one_attack_covered_gets_no_worst_case_row(runs: list[Path],
                                                              tmp_path: Path) -> None:
    # cw alone on eight examples: that row would repeat cw's own
    big = fake_run(tmp_path, "big", {("convnet", "cw", 0.1): [[0, 1, 2, 3, 0, 1, 2, 3]]},
                   [0, 1, 2, 3, 0, 1, 2, 3])
    convnet = worst_case_frame([*runs, big]).query("model == 'convnet'")
    assert list(convnet["n"]) == [4] and convnet["attacks"].item() == "cw+fgsm+pgd"


def test_the_plotted_worst_case_counts_every_attack(runs: list[Path], tmp_path: Path) -> None:
    c = fake_run(tmp_path, "c", {("convnet", "square", 0.1): [[0, 9]],
                                 ("shortrun", "square", 0.1): [[0, 1], [0, 1]]}, [0, 1])
    rows = every_attack_rows(worst_case_frame([*runs, c])).set_index("model")
    assert rows.loc["convnet", "n"] == 2 and rows.loc["convnet", "attacks"] == "fgsm+pgd+square"
    assert rows.loc["shortrun", "n"] == 2


def test_between_the_largest_and_the_every_attack_size_no_rows(runs: list[Path],
                                                              tmp_path: Path) -> None:
    c = fake_run(tmp_path, "c", {("convnet", "square", 0.1): [[0, 1]]}, [0, 1])
    d = fake_run(tmp_path, "d", {("convnet", "cw", 0.1): [[0, 1, 2]]}, [0, 1, 2])
    convnet = worst_case_frame([*runs, c, d]).query("model == 'convnet'")
    assert sorted(convnet["n"]) == [2, 2, 4]  # not 3
    assert convnet.set_index("without").loc["", "attacks"] == "cw+fgsm+pgd+square"
    assert set(convnet.query("n == 4")["without"]) == {"cw+square"}


def test_an_attack_repeated_on_fewer_examples_adds_no_rows(runs: list[Path],
                                                           tmp_path: Path) -> None:
    # fgsm again on two examples (an older, smaller run merged in): fgsm+pgd on four remains
    c = fake_run(tmp_path, "c", {("convnet", "fgsm", 0.1): [[0, 1]]}, [0, 1])
    convnet = worst_case_frame([*runs, c]).query("model == 'convnet'")
    assert list(zip(convnet.n, convnet.attacks, convnet.without, strict=True)) == [
        (4, "fgsm+pgd", "")]


def test_the_worst_case_summary_labels_what_each_row_leaves_out(runs: list[Path],
                                                                tmp_path: Path) -> None:
    from robbench.report.tables import worst_case_summary

    c = fake_run(tmp_path, "c", {("convnet", "square", 0.1): [[0, 9]],
                                 ("shortrun", "square", 0.1): [[0, 1], [0, 1]]}, [0, 1])
    summary = worst_case_summary([*runs, c])
    assert list(zip(summary.row, summary.n, summary.attacks, strict=True)) == [
        ("clean", 4, "-"),
        (WORST_CASE, 2, "fgsm+pgd+square"),
        (f"{WORST_CASE} w/o square", 2, "fgsm+pgd"),
        (f"{WORST_CASE} w/o square", 4, "fgsm+pgd"),
    ]
    assert list(summary.convnet[1:]) == ["0.0% [0.0, 65.8]", "50.0% [9.5, 90.5]",
                                         "50.0% [15.0, 85.0]"]


def test_an_attack_only_some_models_ran_is_named_with_them_in_one_worst_case_row(
        runs: list[Path], tmp_path: Path) -> None:
    """AutoAttack's standard version runs on the deterministic model only: the row stays one
    row per eps, its attacks naming who ran it."""
    from robbench.report.tables import worst_case_summary

    d = fake_run(tmp_path, "d", {("convnet", "autoattack", 0.1): [[0, 1, 9, 3]]}, LABELS)
    summary = worst_case_summary([*runs, d])
    assert list(zip(summary.row, summary.attacks, strict=True)) == [
        ("clean", "-"), (WORST_CASE, "autoattack (convnet)+fgsm+pgd")]
    # example 2 falls to autoattack too: the ConvNet keeps only example 1
    assert summary.convnet[1].startswith("25.0%") and not summary.shortrun.isna().any()


@pytest.mark.parametrize("n", [1, 3, 7, 60, 397, 1000, 10_000])
def test_the_wilson_interval_contains_the_accuracy_even_at_0_and_1(n):
    for successes in (0, 1, n // 2, n - 1, n):
        low, high = wilson_interval(successes, n)
        assert 0.0 <= low <= successes / n <= high <= 1.0
    assert wilson_interval(n, n)[1] == 1.0 and wilson_interval(0, n)[0] == 0.0


def test_first_counts_only_the_first_images_of_every_run(runs: list[Path], tmp_path: Path,
                                                        capsys) -> None:
    # on examples 0 and 1: fgsm fools neither convnet example, pgd fools example 0
    wide, _ = results_frames(runs, first=2)
    convnet = wide.set_index("attack")["convnet"]
    assert set(wide.n) == {2}
    assert convnet["fgsm"] == "100.0% [34.2, 100.0]" and convnet["pgd"] == "50.0% [9.5, 90.5]"
    assert convnet[WORST_CASE] == "50.0% [9.5, 90.5]"
    # shortrun fgsm draws on examples 0 and 1: [1, .5] -> 75%
    assert wide.set_index("attack").loc["fgsm", "shortrun"].startswith("75.0% ")
    # a first at or beyond every run's size is the plain table
    assert results_table(runs, first=4) == results_table(runs)
    assert main(["table", *map(str, runs), "--first", "2"]) == 0
    assert "| 50.0% [9.5, 90.5]" in capsys.readouterr().out
    with pytest.raises(ValueError, match="first 0 must be an integer >= 1"):
        results_frames(runs, first=0)
