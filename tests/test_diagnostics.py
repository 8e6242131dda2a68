"""Gradient-masking diagnostics: every check is a row with a status, on any model; the CLI
writes the report."""

from __future__ import annotations

import json

import pandas as pd
import torch
from conftest import target

from robbench.cli import main
from robbench.models.zoo import LoadedModel
from robbench.report.diagnostics_table import format_table
from robbench.studies.diagnostics import (
    DiagnoseConfig,
    config_from_settings,
    loss_ascent,
    run_diagnostics,
)
from robbench.studies.diagnostics_report import write_report

CHECKS = {"clean accuracy", "accuracy vs eps", "non-increasing in eps",
          "large eps reaches <= 5%", "convergence: steps", "convergence: EOT draws",
          "EOT by convergence", "not stronger than white-box", "worst case",
          "gradient not vanishing", "binarization test (Zimmermann et al. 2022)"}


def test_diagnostics_report_every_check(tiny_convnet, tiny_shortrun, digits, tmp_path):
    frame = run_diagnostics(target(tiny_shortrun), digits.x_test, digits.y_test,
                            source=target(tiny_convnet), config=DiagnoseConfig.quick(),
                            quiet=True)
    assert set(frame["check"]) == CHECKS
    assert set(frame["status"]) <= {"PASS", "FAIL", "INFO"}
    compared = frame[frame["check"] == "not stronger than white-box"]
    assert set(compared["attack"]) == {"square", "transfer", "latent-pgd", "fixed-noise-pgd"}
    swept = frame[frame["check"] == "accuracy vs eps"]
    assert list(swept["eps"]) == sorted(swept["eps"]) and 1.0 in set(swept["eps"])
    chosen = frame[frame["check"] == "EOT by convergence"]["detail"].item()
    assert chosen.startswith("chosen M = ")
    out = write_report(frame, tmp_path / "diag", {"model": "tiny"})
    assert pd.read_csv(out / "diagnostics.csv").shape[0] == len(frame)
    assert "gradient not vanishing" in (out / "diagnostics.md").read_text()


def test_a_deterministic_model_without_hooks_or_source_gets_every_row_it_can(digits):
    """A parameter-free model: no EOT ladder (one pass is exact), transfer skipped for want of
    a source, latent-pgd and the binarization test skipped for want of a hook, each with its
    reason."""

    class Threshold(torch.nn.Module):
        def forward(self, x):
            return torch.stack([x.mean((1, 2, 3)) * k for k in range(10)], 1)

    frame = run_diagnostics(target(Threshold()), digits.x_test, digits.y_test,
                            config=DiagnoseConfig.quick(), quiet=True)
    assert "convergence: EOT draws" not in set(frame["check"])
    skipped = frame[frame["detail"].str.startswith("skipped")]
    assert set(skipped["check"]) == {"not stronger than white-box",
                                     "binarization test (Zimmermann et al. 2022)"}
    assert dict(zip(skipped["attack"], skipped["detail"], strict=True)) == {
        "transfer": "skipped: no transfer source model",
        "latent-pgd": "skipped: no latent hook (infer or embed)",
        "eot-pgd": "skipped: no feature hook (infer or embed)"}


def test_a_failed_check_is_loud(tmp_path):
    frame = pd.DataFrame([{"check": "large eps reaches <= 5%", "attack": "eot-pgd", "setting": "",
                           "eps": 1.0, "accuracy": 0.4, "ci_low": 0.3, "ci_high": 0.5,
                           "reference": 0.05, "status": "FAIL", "detail": "masking"}])
    assert "**FAIL**" in format_table(frame)
    md = (write_report(frame, tmp_path) / "diagnostics.md").read_text()
    assert "1 check(s) FAILED" in md


def test_cli_diagnose_quick(tiny_convnet, tiny_shortrun, tmp_path, capsys, monkeypatch):
    from robbench.runs import named
    from robbench.studies import diagnostics_report

    tiny = {"convnet": tiny_convnet, "shortrun": tiny_shortrun}

    def load(name, *args, **kwargs):
        return LoadedModel(name, tiny[name], {"name": name, "sha256": name * 8}, "test")

    monkeypatch.setattr(named, "load_named_model", load)
    monkeypatch.setattr(diagnostics_report, "load_named_model", load)
    rc = main(["diagnose", "--model", "shortrun", "--quick", "--n", "8", "--out",
               str(tmp_path / "d"), "--quiet", "--device", "cpu"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "convergence: EOT draws" in out and "gradient not vanishing" in out
    assert "binarization test (Zimmermann et al. 2022)" in out
    assert (tmp_path / "d" / "diagnostics.md").is_file()


def test_cli_diagnose_rerun_replaces_one_check_and_keeps_the_rest(
        tiny_convnet, tiny_shortrun, tmp_path, capsys, monkeypatch):
    """A report made before the binarization test gained its ``draws`` setting: --rerun
    recomputes that row alone, on the recorded settings (the new one at its default), and the
    report then counts as current for those settings."""
    from robbench.runs import named
    from robbench.studies import diagnostics_report

    tiny = {"convnet": tiny_convnet, "shortrun": tiny_shortrun}

    def load(name, *args, **kwargs):
        return LoadedModel(name, tiny[name], {"name": name, "sha256": name * 8}, "test")

    monkeypatch.setattr(named, "load_named_model", load)
    monkeypatch.setattr(diagnostics_report, "load_named_model", load)
    out = tmp_path / "d"
    assert main(["diagnose", "--model", "shortrun", "--quick", "--n", "8", "--out", str(out),
                 "--quiet", "--device", "cpu"]) == 0
    record = json.loads((out / "config.json").read_text())
    del record["run"]["settings"]["binarization"]["draws"]
    (out / "config.json").write_text(json.dumps(record))
    before = pd.read_csv(out / "diagnostics.csv")
    binarization = before["check"] == "binarization test (Zimmermann et al. 2022)"
    stale = before.copy()
    stale.loc[binarization, "detail"] = "made by the earlier rule"
    stale.to_csv(out / "diagnostics.csv", index=False)

    assert main(["diagnose", "--rerun", "binarization", "--out", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    after = pd.read_csv(out / "diagnostics.csv")
    assert list(after["check"]) == list(before["check"])
    pd.testing.assert_frame_equal(after[~binarization], before[~binarization])
    assert after.loc[binarization, "detail"].iloc[0] != "made by the earlier rule"
    record = json.loads((out / "config.json").read_text())
    assert record["run"]["settings"]["binarization"]["draws"] == 64
    assert set(record["rerun"]) == {"binarization"}
    report = (out / "diagnostics.md").read_text()
    assert "rerun alone: binarization" in report and "| nan" not in report
    settings = config_from_settings(record["run"]["settings"])
    key = diagnostics_report.run_key("shortrun", "digits", settings, "shortrun" * 8)
    assert diagnostics_report.current_report_seconds(out, key) == record["seconds"]

    capsys.readouterr()
    record["run"]["checkpoint"] = "0" * 64
    (out / "config.json").write_text(json.dumps(record))
    assert main(["diagnose", "--rerun", "binarization", "--out", str(out), "--quiet"]) == 2
    assert main(["diagnose", "--rerun", "binarization", "--quiet"]) == 2
    assert main(["diagnose", "--rerun", "binarization", "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "not the model of the report" in err and "--rerun needs --out" in err
    assert "holds no diagnostics report" in err
    pd.testing.assert_frame_equal(pd.read_csv(out / "diagnostics.csv"), after)


class _Scaled(torch.nn.Module):
    """A linear classifier whose logits are multiplied by ``scale`` (and rounded if asked)."""

    def __init__(self, scale: float, rounded: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(64, 10)
        self.scale, self.rounded = scale, rounded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if self.rounded:  # a quantizer: zero gradient everywhere
            x = torch.round(x)
        return self.scale * self.linear(x)


def test_a_saturated_softmax_is_not_a_vanishing_gradient_but_a_quantizer_is():
    """Logits scaled by 1e4 make float32's softmax exactly one-hot (cross-entropy gradient
    zero), yet every logit still moves with the input: the check must count no zero gradients.
    Rounding the input leaves no gradient at all: the check must count all of them."""
    x = torch.rand(8, 1, 8, 8)
    saturated = _Scaled(1e4)
    y = saturated(x).argmax(1)
    _, zero, _ = loss_ascent(target(saturated), x, y, 0.1, 2, 1)
    assert zero == 0.0
    _, zero, _ = loss_ascent(target(_Scaled(1.0, rounded=True)), x, y, 0.1, 2, 1)
    assert zero == 1.0
