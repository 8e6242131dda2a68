"""`robbench check`: passes on its pinned baseline, fails on a doctored one and a weakened model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from robbench.cli import main
from robbench.runs.config import RunConfig
from robbench.studies import regression_check as rc

REPO = Path(__file__).resolve().parents[1]
TINY = [RunConfig(models=["convnet", "shortrun"], attacks=["fgsm"], eps=[0.1, 0.2], n=40,
                  draws=2, seed=0)]


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small baseline generated (never hand-typed) by ``update`` from the shipped models."""
    path = tmp_path_factory.mktemp("baseline") / "baseline.json"
    assert rc.update(path, runs=TINY, echo=lambda _: None) == 0
    return path


def _doctor(src: Path, dst: Path, model: str, attack: str, eps: float, delta: float) -> float:
    doc = json.loads(src.read_text())
    for cell in doc["cells"]:
        if (cell["model"], cell["attack"], cell["eps"], cell["metric"]) == (model, attack, eps,
                                                                             "expected"):
            moved = cell["expected"] + delta if cell["expected"] + delta <= 1 else \
                cell["expected"] - delta
            cell["expected"] = round(moved, 6)
            dst.write_text(json.dumps(doc, indent=2) + "\n")
            return cell["expected"]
    raise AssertionError(f"no cell {model} {attack} {eps}")


def test_baseline_is_generated_with_settings_and_tolerances(pinned: Path) -> None:
    doc = json.loads(pinned.read_text())
    assert doc["runs"] == [dataclasses.asdict(c) for c in TINY]
    keys = {(c["model"], c["attack"], c["eps"], c["metric"]) for c in doc["cells"]}
    metrics = {"convnet": ("expected",), "shortrun": ("expected", "majority", "all_draws")}
    assert keys == {(m, a, e, metric) for m in ("convnet", "shortrun") for metric in metrics[m]
                    for a, e in (("none", 0.0), ("fgsm", 0.1), ("fgsm", 0.2))}
    for cell in doc["cells"]:
        assert cell["n"] == 40 and 0 <= cell["expected"] <= 1
        assert cell["tolerance"] == rc.tolerance_for(cell["expected"], 40)
        assert rc.FLOOR <= cell["tolerance"] < 0.2


def test_check_passes_on_pinned_baseline(pinned: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check", "--baseline", str(pinned), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "passed" in out and "REGRESSED" not in out


def test_check_fails_on_doctored_baseline(pinned: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    doctored = tmp_path / "doctored.json"
    moved = _doctor(pinned, doctored, "shortrun", "fgsm", 0.1, 0.2)
    assert main(["check", "--baseline", str(doctored), "--quiet"]) == 1
    out = capsys.readouterr().out
    regressed = [line for line in out.splitlines() if line.strip().startswith("regressed:")]
    assert len(regressed) == 1
    assert "model=shortrun attack=fgsm eps=0.1" in regressed[0]
    assert f"expected={moved:.4f}" in regressed[0] and "tolerance=" in regressed[0]


def test_check_fails_on_weakened_model(pinned: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture) -> None:
    """The Short Run model with a single Langevin step (K = 1) instead of the trained K = 20."""
    from robbench.models.build import build_model
    from robbench.models.zoo import load_named_model
    from robbench.runs import named

    def weakened(name: str, dataset: str, **kw):
        loaded = load_named_model(name, dataset, **kw)
        if name != "shortrun":
            return loaded
        short = build_model(dataclasses.replace(loaded.module.config, langevin_steps=1))
        short.load_state_dict(loaded.module.state_dict())
        return dataclasses.replace(loaded, module=short.eval())

    monkeypatch.setattr(named, "load_named_model", weakened)
    assert rc.check(pinned, echo=print) == 1
    out = capsys.readouterr().out
    regressed = [line for line in out.splitlines() if line.strip().startswith("regressed:")]
    assert regressed and all("model=shortrun" in line for line in regressed)
    assert any("attack=none" in line for line in regressed)  # clean accuracy collapses


def test_update_changes_only_what_it_reports(pinned: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    doctored = tmp_path / "baseline.json"
    moved = _doctor(pinned, doctored, "convnet", "fgsm", 0.2, 0.2)
    lines: list[str] = []
    assert rc.update(doctored, echo=lines.append) == 0
    changes = [line.strip() for line in lines if line.startswith("  ")]
    assert len(changes) == 1
    assert changes[0].startswith(f"convnet fgsm eps=0.2 expected: expected {moved} -> ")
    assert doctored.read_bytes() == pinned.read_bytes()  # nothing else was touched
    assert main(["check", "--baseline", str(doctored), "--update", "--quiet"]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert doctored.read_bytes() == pinned.read_bytes()


def test_diff_names_added_removed_and_changed_cells(pinned: Path) -> None:
    old = json.loads(pinned.read_text())
    new = json.loads(pinned.read_text())
    clean = sum(c["attack"] == "none" for c in old["cells"])
    new["cells"] = [c for c in new["cells"] if c["attack"] != "none"]
    new["cells"][0]["tolerance"] = 0.5
    changes = rc.diff(old, new)
    assert clean == 4 and len(changes) == clean + 1  # convnet: 1 metric, shortrun: 3
    assert sum(line.startswith("removed ") for line in changes) == clean
    assert any("tolerance" in line and "-> 0.5" in line for line in changes)
    assert rc.diff(old, old) == []


def test_tolerance_rule() -> None:
    assert rc.tolerance_for(1.0, 10_000) == rc.FLOOR
    assert 0.09 < rc.tolerance_for(0.5, 100) < 0.1  # Wilson half-width at n = 100
    assert rc.tolerance_for(0.5, 200) < rc.tolerance_for(0.5, 100)


def test_missing_baseline_is_one_line_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    assert main(["check", "--baseline", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--update" in err


def test_committed_baseline_pins_the_default_grid() -> None:
    doc = rc.load_baseline(REPO / "results" / "baseline.json")
    assert doc["runs"] == [dataclasses.asdict(c) for c in rc.DEFAULT_RUNS]
    cells = {(c["model"], c["attack"]) for c in doc["cells"]}
    for model in ("convnet", "shortrun"):
        for attack in ("none", "fgsm", "pgd", "eot-pgd"):
            assert (model, attack) in cells
    assert all(c["tolerance"] < 0.2 for c in doc["cells"])  # a 0.2 move is always caught


@pytest.mark.slow
def test_committed_baseline_passes(capsys: pytest.CaptureFixture) -> None:
    assert main(["check", "--baseline", str(REPO / "results" / "baseline.json"), "--quiet"]) == 0
