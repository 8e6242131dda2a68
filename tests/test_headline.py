"""`robbench headline`: every attack run resumably, diagnostics, merged table and figures."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from robbench.cli import main
from robbench.models.zoo import LoadedModel
from robbench.studies.diagnostics import DiagnoseConfig
from robbench.studies.headline import HeadlineConfig, run_headline_named, run_models
from robbench.studies.headline_protocol import HEADLINE_NAMES, headline_runs


def test_the_grid_is_the_protocol():
    runs = {r.name: r for r in headline_runs(eot=16)}
    assert set(runs) == {"fgsm", "pgd", "eot-pgd", "apgd", "autoattack-rand", "autoattack",
                         "square", "transfer", "pgd-l2", "eot-pgd-l2", "cw"}
    assert runs["autoattack"].deterministic_only and runs["autoattack"].eps == (0.1, 0.3)
    assert not runs["autoattack-rand"].deterministic_only
    for name in ("eot-pgd", "eot-pgd-l2"):
        assert runs[name].params == {"eot": 16} and runs[name].eot_sized
    assert runs["eot-pgd-l2"].eps == runs["pgd-l2"].eps == (1.0, 2.0)
    assert runs["pgd"].eps == (0.1, 0.2, 0.3) and runs["cw"].eps == (1.0, 2.0)
    assert runs["apgd"].eps == (0.1, 0.3) and not runs["pgd"].eot_sized


def test_autoattack_standard_runs_on_the_deterministic_models_only(shipped_convnet,
                                                                   shipped_shortrun):
    runs = {r.name: r for r in headline_runs()}
    models = {name: LoadedModel(name, module, {}, "zoo")
              for name, module in (("convnet", shipped_convnet), ("shortrun", shipped_shortrun))}
    assert run_models(runs["autoattack"], ["convnet", "shortrun"], models) == ["convnet"]
    assert run_models(runs["autoattack"], ["shortrun"], models) == []
    assert run_models(runs["autoattack-rand"], ["convnet", "shortrun"], models) == [
        "convnet", "shortrun"]


def test_headline_writes_runs_table_figures_and_diagnostics(tmp_path):
    cfg = HeadlineConfig(n=12, n_eot=6, draws=12, selection_draws=2, eot=2,
                         attacks=("fgsm", "eot-pgd"), diagnostics=DiagnoseConfig.quick())
    record = run_headline_named(cfg, tmp_path, quiet=True)
    assert set(record["seconds"]) == {"fgsm", "eot-pgd", "diagnostics-convnet",
                                      "diagnostics-shortrun"}
    table = pd.read_csv(tmp_path / "table.csv")
    acc = table[table.section == "accuracy"]
    assert set(acc.attack) == {"none", "fgsm", "eot-pgd", "worst case"}
    # EOT attacks run on the first n_eot images and the table says so.
    assert set(acc[acc.attack == "eot-pgd"].n) == {6} and set(acc[acc.attack == "fgsm"].n) == {12}
    assert set(acc[acc.attack == "eot-pgd"].eot.astype(str)) == {"1/2"}  # convnet 1, shortrun 2
    worst = acc[acc.attack == "worst case"].set_index("eps")
    assert worst.loc[0.1, "n"] == 6  # only examples every attack covered
    diagnosed = set(table[table.section == "diagnostics"].source)
    assert diagnosed == {"digits-convnet", "digits-shortrun"}
    assert (tmp_path / "figures" / "accuracy_vs_eps.png").is_file()
    assert "worst case" in (tmp_path / "accuracy.md").read_text()
    assert "Diagnostics" not in (tmp_path / "accuracy.md").read_text()
    summary = (tmp_path / "worst_case.md").read_text()
    assert "| clean " in summary and "eot-pgd+fgsm" in summary
    # a random model's worst case under every metric, all-draws at R and at 10 passes
    header = summary.splitlines()[0]
    for column in ("shortrun majority", "shortrun all-draws", "shortrun all-draws@10"):
        assert column in header
    assert "convnet majority" not in header  # one column: the metrics coincide
    assert json.loads((tmp_path / "headline.json").read_text())["config"]["n_eot"] == 6
    page = (tmp_path / "report.html").read_text()  # the page of it all, diagnostics included
    assert page.count("<section id=") == 8 and page.count("data:image/png;base64,") == 2
    assert "digits-shortrun: <span" in page and "robbench headline --dataset digits" in page
    # Resuming recomputes nothing: the cells and diagnostics are already there.
    report = tmp_path / "diagnostics" / "digits-shortrun" / "diagnostics.csv"
    written = report.stat().st_mtime_ns
    run_headline_named(cfg, tmp_path, quiet=True)
    assert report.stat().st_mtime_ns == written


def test_unknown_headline_attack_is_a_one_line_error(tmp_path, capsys):
    assert main(["headline", "--attacks", "fgsm,nope", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "headline attack 'nope' is unknown; allowed: " + ", ".join(HEADLINE_NAMES) in err
    assert not any(tmp_path.iterdir())


def test_headline_config_rejects_unknown_attacks():
    with pytest.raises(ValueError, match="headline attack 'x' is unknown"):
        HeadlineConfig(attacks=("x",))


def test_single_attacks_get_their_own_size_capped_by_n():
    runs = {r.name: r for r in headline_runs()}
    cfg = HeadlineConfig(n=1000, n_eot=500, n_attack={"square": 200, "pgd": 5000})
    assert cfg.size(runs["square"]) == 200  # instead of n_eot
    assert cfg.size(runs["apgd"]) == 500 and cfg.size(runs["fgsm"]) == 1000
    assert cfg.size(runs["pgd"]) == 1000  # never beyond n
    assert HeadlineConfig(n=None, n_eot=None, n_attack={"cw": 7}).size(runs["cw"]) == 7
    with pytest.raises(ValueError, match="headline attack 'x' is unknown"):
        HeadlineConfig(n_attack={"x": 3})
    with pytest.raises(ValueError, match="test examples for square 0 must be an integer >= 1"):
        HeadlineConfig(n_attack={"square": 0})


@pytest.mark.parametrize(("value", "message"), [
    ("square", "'square' is not NAME=N (e.g. square=200)"),
    ("nope=3", "headline attack 'nope' is unknown; allowed: "),
    ("square=0", "test examples for square: '0' must be >= 1"),
    ("square=200,cw=x", "test examples for cw: 'x' is not an integer"),
])
def test_bad_attack_sizes_are_one_line_errors(tmp_path, capsys, value, message):
    assert main(["headline", "--n-attack", value, "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not any(tmp_path.iterdir())


def test_a_headline_run_is_what_robbench_run_writes(tmp_path):
    """The headline's PGD run is `robbench run --attack pgd` with the same sizes and seed, so a
    user reproduces a committed headline row with the one command."""
    sizes = ["--n", "12", "--draws", "3", "--selection-draws", "3", "--quiet"]
    assert main(["headline", "--attacks", "pgd", "--no-diagnostics",
                 "--out", str(tmp_path / "h"), *sizes]) == 0
    assert main(["run", "--attack", "pgd", "--run-dir", str(tmp_path / "r"), *sizes]) == 0
    columns = ["model", "attack", "eps", "n", "correct", "accuracy", "majority", "all_draws"]
    headline = pd.read_csv(tmp_path / "h" / "runs" / "pgd" / "summary.csv")[columns]
    single = pd.read_csv(tmp_path / "r" / "summary.csv")[columns]
    pd.testing.assert_frame_equal(headline, single)
    assert len(single) == 8
