"""The binarization test (Zimmermann et al. 2022): it tells a strong attack from a weak one,
runs on random models, counts invalid constructions, and shows in the diagnostics."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import target

import robbench
from robbench.attacks.target import Target
from robbench.attacks.threat_model import perturbation_norms
from robbench.cli import main
from robbench.models.zoo import LoadedModel
from robbench.studies.binarization import (
    BinarizationConfig,
    boundary_points,
    inner_points,
    run_binarization_test,
    votes_decided,
)
from robbench.studies.diagnostics import DiagnoseConfig

CHECK = "binarization test (Zimmermann et al. 2022)"


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_inner_points_lie_in_the_eta_ball_and_boundary_points_at_eps(digits, norm):
    eps = 0.1 if norm == "linf" else 1.0
    x, gen = digits.x_test[0], torch.Generator().manual_seed(0)
    inner = inner_points(x, 50, eps, 0.95, norm, gen)
    boundary = boundary_points(x, 50, eps, norm, gen)
    for points in (inner, boundary):
        assert points.min() >= 0 and points.max() <= 1
    assert perturbation_norms(x.expand_as(inner), inner, norm).max() <= 0.95 * eps + 1e-6
    distances = perturbation_norms(x.expand_as(boundary), boundary, norm)
    # clipping to [0, 1] shortens them; rescaling brings them back to within 1% of eps
    assert len(boundary) == 50 and distances.min() >= 0.99 * eps
    assert distances.max() <= eps + 1e-6


def test_the_headline_pgd_passes_and_a_tiny_fgsm_fails(shipped_convnet, digits):
    x, y = digits.x_test[:40], digits.y_test[:40]
    strong = run_binarization_test(target(shipped_convnet), x, y, 0.1,
                                   config=BinarizationConfig(n=12))
    weak = run_binarization_test(target(shipped_convnet), x, y, 0.1, config=BinarizationConfig(
        n=12, attack="pgd", settings={"steps": 1, "step_size": 0.001, "random_start": False}))
    assert strong.valid >= 6 and strong.status == "PASS"
    assert weak.status == "FAIL" and weak.high < 0.95
    # the same images and constructions: only the attack differs
    pd.testing.assert_frame_equal(strong.samples.drop(columns="success"),
                                  weak.samples.drop(columns="success"))
    assert strong.rate > weak.rate


def test_a_random_model_one_draw_scores_lower_than_eot_of_the_same_steps(shipped_convnet,
                                                                          digits):
    """A noise-injection model with an ``embed`` hook: Gaussian noise on the input, as in
    randomised-smoothing-style defenses. One-draw gradients are noisy; EOT averages them."""

    class Noisy(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return self.model.embed(x + 0.15 * torch.randn_like(x))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model.head(self.embed(x))

    noisy = Target(Noisy(shipped_convnet).eval(), True, 10, "noisy")
    x, y = digits.x_test[:40], digits.y_test[:40]
    scores = {}
    for eot in (16, 1):
        cfg = BinarizationConfig(n=20, feature_draws=32, draws=32,
                                 settings={"eot": eot, "steps": 10, "step_size": 0.025})
        scores[eot] = run_binarization_test(noisy, x, y, 0.1, config=cfg)
    assert scores[16].valid == scores[1].valid >= 5
    assert "EOT 16" in scores[16].setting and "EOT 1" in scores[1].setting
    # per image: the fraction of R passes fooled, averaged over the valid images
    assert scores[16].samples["success"].mean() > scores[1].samples["success"].mean()
    assert scores[16].rate >= scores[1].rate


def test_a_random_model_gets_the_same_images_whatever_the_random_state_before(
        shipped_convnet, digits):
    """Which images a random model classifies correctly depends on its draws: the test seeds
    them, so the same call tests the same images (and gives the same row) every time."""

    class VeryNoisy(torch.nn.Module):
        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return shipped_convnet.embed(x + 0.5 * torch.randn_like(x))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return shipped_convnet.head(self.embed(x))

    noisy = Target(VeryNoisy().eval(), True, 10, "very noisy")
    x, y = digits.x_test[:60], digits.y_test[:60]
    cfg = BinarizationConfig(n=30, inner=2, held_out=1, feature_draws=2, draws=3,
                             settings={"eot": 1, "steps": 1})
    samples = []
    for state in (1, 2):
        torch.manual_seed(state)
        samples.append(run_binarization_test(noisy, x, y, 0.1, config=cfg).samples)
    assert len(samples[0]) == 30
    pd.testing.assert_frame_equal(samples[0], samples[1])


def test_votes_decide_only_beyond_doubt():
    # Wilson 95% bounds: 8 of 8 has lower bound 0.68; 4 of 8 straddles 1/2; 20 of 64 lies
    # below (upper bound 0.43), 36 of 64 straddles (0.44, 0.68)
    votes = torch.tensor([8, 4, 0])
    assert votes_decided(votes, 8).tolist() == [1, 0, -1]
    assert votes_decided(torch.tensor([20, 36, 44]), 64).tolist() == [-1, 0, 1]


def test_a_random_model_whose_features_ignore_the_image_gets_no_valid_construction(digits):
    """Pure-noise features: x and every boundary point have the same 'boundary' vote rate, so
    no known adversarial example is one in expectation. With 64 features the readout always
    separates its 31 fitting points, by their mean features' noise; the fresh passes must
    catch it. (A bare majority of 8 passes let 3 of these 12 through, and the test reported
    FAIL on a model where no attack can succeed.)"""

    class Noise(torch.nn.Module):
        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return torch.randn(len(x), 64) + 0 * x.flatten(1)[:, :1]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 10)
            return logits * 1.0 + 0.01 * self.embed(x)[:, :1]

    zeros = digits.y_test == 0
    cfg = BinarizationConfig(n=12, feature_draws=64, draws=32, settings={"eot": 1, "steps": 1})
    result = run_binarization_test(Target(Noise(), True, 10, "noise"), digits.x_test[zeros][:12],
                                   digits.y_test[zeros][:12], 0.1, config=cfg)
    assert (result.valid, result.invalid, result.status) == (0, 12, "INFO")
    assert result.samples["planted_votes"].between(0, 1).sum() > 0
    reasons = set(result.samples["reason"])
    assert reasons & {"x not inner beyond doubt",
                      "known adversarial example not one beyond doubt"}, reasons


def test_invalid_constructions_are_counted_and_reported(shipped_convnet, digits):
    class Blind(torch.nn.Module):
        """Features that ignore the image: no readout can separate anything."""

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ones(len(x), 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 10) * 1.0

    zeros = digits.y_test[digits.y_test == 0][:5]
    blind = run_binarization_test(target(Blind()), digits.x_test[digits.y_test == 0][:5],
                                  zeros, 0.1, config=BinarizationConfig(n=5))
    assert (blind.valid, blind.invalid, blind.status) == (0, 5, "INFO")
    assert blind.summary() == "inconclusive: no valid construction (5 not separable)"
    real = run_binarization_test(target(shipped_convnet), digits.x_test[:40],
                                 digits.y_test[:40], 0.1, config=BinarizationConfig(n=20))
    invalid = real.samples[~real.samples["valid"].astype(bool)]
    assert real.invalid == len(invalid) > 0 and real.valid + real.invalid == 20
    for reason, count in invalid["reason"].value_counts().items():
        assert f"{count} {reason}" in real.summary()


def test_the_diagnostics_row_and_the_api_switch(tiny_convnet, digits):
    quick = DiagnoseConfig.quick()
    x, y = digits.x_test[:16], digits.y_test[:16]
    frame = robbench.diagnose(tiny_convnet, x, y, config=quick, quiet=True, device="cpu")
    row = frame[frame["check"] == CHECK].iloc[0]
    assert row["status"] in {"PASS", "FAIL", "INFO"} and row["attack"] == "eot-pgd"
    assert "valid of" in row["detail"] or row["detail"].startswith("inconclusive")
    passive = robbench.diagnose(tiny_convnet, x, y, config=quick, quiet=True, device="cpu",
                                active=False)
    assert CHECK not in set(passive["check"])


def test_cli_binarization_writes_one_row_per_setting_and_refuses_bad_values(
        tiny_convnet, tmp_path, capsys, monkeypatch):
    from robbench.runs import named

    def load(name, *args, **kwargs):
        return LoadedModel(name, tiny_convnet, {"name": name, "sha256": "0" * 64}, "test")

    monkeypatch.setattr(named, "load_named_model", load)
    out = tmp_path / "b"
    common = ["binarization", "--model", "convnet", "--n", "3", "--pool", "40", "--out",
              str(out), "--quiet", "--device", "cpu"]
    assert main(common) == 0
    assert main([*common, "--attack", "pgd", "--steps", "2"]) == 0
    assert main(common) == 0  # the same setting again replaces its row
    assert main([*common, "--loss", "margin"]) == 0  # another loss is another setting
    frame = pd.read_csv(out / "binarization.csv")
    assert list(frame["attack"]) == ["eot-pgd", "pgd", "eot-pgd"]
    assert frame["setting"].iloc[2] == frame["setting"].iloc[0] + ", margin loss"
    assert (frame["valid"] + frame["invalid"] <= 3).all()
    assert len(list((out / "samples").glob("*.csv"))) == 3
    assert "binarization test (Zimmermann et al. 2022)" in (out / "binarization.md").read_text()
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main(["binarization", "--eot", "auto", "--out", str(bad)]) == 2
    assert main(["binarization", "--attack", "pgd", "--n-queries", "5", "--out", str(bad)]) == 2
    assert main(["binarization", "--threshold", "1.5", "--out", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "eot 'auto'" in err and "n_queries" in err and "threshold 1.5" in err
    assert not bad.exists()
