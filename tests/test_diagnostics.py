"""Gradient-masking diagnostics: every check is a row with a status; the CLI writes the report."""

from __future__ import annotations

import pandas as pd

from robbench.attacks.diagnostics import (
    DiagnoseConfig,
    format_table,
    run_diagnostics,
    write_report,
)
from robbench.cli import main

CHECKS = {"clean accuracy", "accuracy vs eps", "non-increasing in eps",
          "large eps reaches <= 5%", "convergence: steps", "convergence: EOT draws",
          "not stronger than white-box", "worst case", "gradient not vanishing"}


def test_diagnostics_report_every_check(tiny_convnet, tiny_shortrun, tmp_path):
    frame = run_diagnostics("shortrun", config=DiagnoseConfig.quick(), quiet=True,
                            models={"convnet": tiny_convnet, "shortrun": tiny_shortrun})
    assert set(frame["check"]) == CHECKS
    assert set(frame["status"]) <= {"PASS", "FAIL", "INFO"}
    compared = frame[frame["check"] == "not stronger than white-box"]
    assert set(compared["attack"]) == {"square", "transfer", "latent-pgd", "fixed-noise-pgd"}
    swept = frame[frame["check"] == "accuracy vs eps"]
    assert list(swept["eps"]) == sorted(swept["eps"]) and 1.0 in set(swept["eps"])
    out = write_report(frame, tmp_path / "diag", {"model": "tiny"})
    assert pd.read_csv(out / "diagnostics.csv").shape[0] == len(frame)
    assert "gradient not vanishing" in (out / "diagnostics.md").read_text()


def test_a_failed_check_is_loud(tmp_path):
    frame = pd.DataFrame([{"check": "large eps reaches <= 5%", "attack": "eot-pgd", "setting": "",
                           "eps": 1.0, "accuracy": 0.4, "ci_low": 0.3, "ci_high": 0.5,
                           "reference": 0.05, "status": "FAIL", "detail": "masking"}])
    assert "**FAIL**" in format_table(frame)
    md = (write_report(frame, tmp_path) / "diagnostics.md").read_text()
    assert "1 check(s) FAILED" in md


def test_cli_diagnose_quick(tiny_convnet, tiny_shortrun, tmp_path, capsys, monkeypatch):
    import robbench.models.registry as registry

    tiny = {"convnet": tiny_convnet, "shortrun": tiny_shortrun}
    monkeypatch.setattr(registry, "load_model", lambda name, *a, **k: (tiny[name], {}))
    rc = main(["diagnose", "--model", "shortrun", "--quick", "--n", "8", "--out",
               str(tmp_path / "d"), "--quiet", "--device", "cpu"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "convergence: EOT draws" in out and "gradient not vanishing" in out
    assert (tmp_path / "d" / "diagnostics.md").is_file()
