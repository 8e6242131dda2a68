"""The binarization test (Zimmermann, Brendel, Tramèr & Carlini, NeurIPS 2022, "Increasing
Confidence in Adversarial Robustness Evaluations"): an *active* check that the attack is strong
enough on this very model.

For a test image x, the model's own features phi (its ``embed`` or ``infer`` hook) feed a new
linear readout fitted to tell *inner* points (uniform in the eta * eps ball around x, x
included; label 0) from *boundary* points (at distance eps; label 1). The binarized model,
phi followed by that readout, keeps the model's randomness (its noise draws stay in phi), and
has, by construction, an adversarial example within eps: the boundary points it was fitted
on. The attack under test runs against it at x and is scored like every robbench cell; an
attack that often fails where success is guaranteed is too weak for this model.

A construction counts only if the readout separates the fitting points perfectly and also
classifies held-out inner and boundary points correctly; otherwise the image is *invalid*,
counted and reported with its reason. For a random model the readout is fitted on each
point's mean feature over M draws, so the construction does not ride on one draw's noise, and
is checked on R fresh passes: the 95% Wilson interval of the rate of 'boundary' votes must lie
below 1/2 at x and above 1/2 at each known adversarial example. A check on the fit's own
features, or a bare majority of a few passes, lets through readouts fitted to the noise of the
mean features, whose 'known' adversarial example is not one in expectation; among many images
the lucky passes are exactly the ones kept, and the attack then "fails" where no success was
guaranteed. The attack's point is scored on R further fresh passes, by their majority.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from robbench.attacks.adaptive import latent_fn
from robbench.attacks.registry import attack_params, craft, get_attack
from robbench.attacks.target import Target
from robbench.attacks.threat_model import perturbation_norms
from robbench.records.scoring import accuracy_fields, predict_draws, wilson_interval

Features = Callable[[torch.Tensor], torch.Tensor]
SAMPLE_COLUMNS = ["index", "valid", "reason", "held_out_inner", "held_out_boundary",
                  "x_votes", "planted_votes", "success"]
DISTANCE_TOLERANCE = 0.01
"""A boundary point counts if it lies within 1% of eps (the reference code's tolerance)."""


@dataclass
class BinarizationConfig:
    """Sizes of the test. With features as narrow as the zoo's (d = 16 on digits), inner and
    boundary points overlap in feature space: a readout separates many inner points from one
    boundary point (the paper's construction), rarely from many."""

    n: int = 50  # correctly classified test images
    eta: float = 0.95  # inner points lie in the eta * eps ball
    inner: int = 30  # inner fitting points, x included
    boundary: int = 1  # boundary fitting points
    held_out: int = 20  # held-out inner points, and as many boundary points
    feature_draws: int = 16  # M: draws averaged per feature of a random model
    draws: int = 64  # R: fresh passes of a random model that check and score each image
    threshold: float = 0.95  # PASS when the success rate's interval reaches it
    attack: str = "eot-pgd"
    settings: dict[str, Any] = field(default_factory=lambda: {"eot": 16})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class BinarizationResult:
    """Valid and invalid constructions, and the attack's success rate on the valid ones with
    its 95% Wilson interval (per image: at least half of R passes say 'boundary', ties going
    to the attack as in every robbench cell)."""

    attack: str
    setting: str
    eps: float
    valid: int
    invalid: int
    rate: float
    low: float
    high: float
    threshold: float
    samples: pd.DataFrame

    @property
    def status(self) -> str:
        """PASS, FAIL, or INFO when no construction was valid (the test is inconclusive)."""
        if self.valid == 0:
            return "INFO"
        return "PASS" if self.high >= self.threshold else "FAIL"

    def summary(self) -> str:
        reasons = self.samples.loc[~self.samples["valid"].astype(bool), "reason"].value_counts()
        invalid = ", ".join(f"{count} {why}" for why, count in reasons.items())
        if self.valid == 0:
            return f"inconclusive: no valid construction ({invalid or 'no image'})"
        text = (f"attack success {self.rate:.1%} [{self.low:.1%}, {self.high:.1%}] on "
                f"{self.valid} valid of {self.valid + self.invalid} images; PASS needs the "
                f"interval to reach {self.threshold:.0%}")
        return text + (f"; invalid: {invalid}" if invalid else "")


class BinarizedModel(nn.Module):
    """The model's features followed by a linear readout: logits (-s/2, s/2) with
    s = w . phi(x) + b, so class 1 ('boundary') wins where s > 0."""

    def __init__(self, model: nn.Module, features: Features, weight: torch.Tensor,
                 bias: float) -> None:
        super().__init__()
        self.model, self.features = model, features
        self.register_buffer("weight", weight)
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.features(x) @ self.weight + self.bias
        return torch.stack([-s / 2, s / 2], 1)


def _within(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x + delta, 0, 1) - x


def _norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    return perturbation_norms(torch.zeros_like(delta), delta, norm)


def inner_points(x: torch.Tensor, count: int, eps: float, eta: float, norm: str,
                 gen: torch.Generator) -> torch.Tensor:
    """``count`` points uniform in the eta * eps ball around ``x`` (one image), clipped to
    [0, 1] (clipping only moves a point closer to x)."""
    shape = (count, *x.shape)
    if norm == "linf":
        delta = (2 * torch.rand(shape, generator=gen) - 1) * eta * eps
    else:
        direction = torch.randn(shape, generator=gen)
        direction /= direction.flatten(1).norm(dim=1).view(-1, *[1] * x.dim())
        radius = torch.rand(count, generator=gen) ** (1 / x.numel())
        delta = direction * (eta * eps * radius).view(-1, *[1] * x.dim())
    return x + _within(x, delta.to(x.device))


def boundary_points(x: torch.Tensor, count: int, eps: float, norm: str,
                    gen: torch.Generator, rounds: int = 20) -> torch.Tensor:
    """``count`` points at distance eps from ``x``: the vertices of the eps cube (L-inf) or
    uniform on the eps sphere (L2), clipped to [0, 1] and rescaled back to eps where clipping
    shortened them (rescaling never overshoots: clipping only shortens). A point still short
    of eps by more than 1% (an image saturated in every direction) is left out."""
    shape = (count, *x.shape)
    if norm == "linf":
        delta = torch.randint(0, 2, shape, generator=gen).to(x.dtype) * 2 - 1
    else:
        delta = torch.randn(shape, generator=gen)
    delta = delta.to(x.device)
    delta = delta * (eps / _norms(delta, norm)).view(-1, *[1] * x.dim())
    for _ in range(rounds):
        reached = _norms(_within(x, delta), norm)
        short = reached < eps * (1 - 1e-4)
        if not short.any():
            break
        grow = torch.where(short & (reached > 0), eps / reached.clamp_min(1e-12), 1.0)
        delta = delta * grow.view(-1, *[1] * x.dim())
    delta = _within(x, delta)
    return (x + delta)[_norms(delta, norm) >= eps * (1 - DISTANCE_TOLERANCE)]


@torch.no_grad()
def mean_features(features: Features, x: torch.Tensor, draws: int) -> np.ndarray:
    """phi of each point, averaged over ``draws`` passes (1 for a deterministic model)."""
    return torch.stack([features(x) for _ in range(draws)]).mean(0).double().cpu().numpy()


def fit_readout(phi: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """A nearly hard-margin logistic regression on the centred features, rescaled by one
    common factor (per-feature scaling would give huge weights to features that barely vary
    among the fitting points, and a binarized model steered by them); returned as (w, b) on
    the raw features."""
    centre, scale = phi.mean(0), phi.std() + 1e-12
    clf = LogisticRegression(C=1e6, max_iter=10_000).fit((phi - centre) / scale, labels)
    w = clf.coef_[0] / scale
    return w, float(clf.intercept_[0] - centre @ w)


@dataclass
class Construction:
    """One image's binarized model (None when invalid, with the reason), how its readout
    classifies the held-out points (the fraction of inner points on the inner side, and of
    boundary points on the boundary side), and, for a random model, the fraction of the check's
    fresh passes that say 'boundary' at x and at the known adversarial example."""

    model: BinarizedModel | None
    reason: str
    held_out_inner: float
    held_out_boundary: float
    x_votes: float = float("nan")
    planted_votes: float = float("nan")


def votes_decided(votes: torch.Tensor, draws: int) -> torch.Tensor:
    """Per point, whether the 95% Wilson interval of its 'boundary' vote count out of
    ``draws`` passes excludes 1/2: +1 above, -1 below, 0 undecided."""
    bounds = torch.tensor([wilson_interval(float(v), draws) for v in votes.tolist()])
    return (bounds[:, 0] > 0.5).long() - (bounds[:, 1] < 0.5).long()


def construct(target: Target, x: torch.Tensor, eps: float, norm: str, cfg: BinarizationConfig,
              gen: torch.Generator) -> Construction:
    """The binarized model around one image ``x`` (C, H, W), if valid: the readout separates
    the fitting points, every held-out inner point stays on the inner side (else random noise
    would already succeed), and, for a random model, ``cfg.draws`` fresh passes put x on the
    inner side and the fitting boundary points, the known adversarial examples, on the
    boundary side, each beyond doubt (see ``votes_decided``)."""
    features = latent_fn(target)
    inner = torch.cat([x[None], inner_points(x, cfg.inner - 1, eps, cfg.eta, norm, gen)])
    boundary = boundary_points(x, cfg.boundary + cfg.held_out, eps, norm, gen)
    if len(boundary) < cfg.boundary + cfg.held_out:
        return Construction(None, "boundary points unreachable", float("nan"), float("nan"))
    points = torch.cat([inner, boundary, inner_points(x, cfg.held_out, eps, cfg.eta, norm, gen)])
    phi = mean_features(features, points, cfg.feature_draws if target.stochastic else 1)
    labels = np.r_[np.zeros(len(inner)), np.ones(len(boundary)), np.zeros(cfg.held_out)]
    fitting = np.r_[np.arange(len(inner)), len(inner) + np.arange(cfg.boundary)]
    w, b = fit_readout(phi[fitting], labels[fitting])
    right = (phi @ w + b > 0) == labels
    held_inner, held_boundary = right[-cfg.held_out:], right[len(inner) + cfg.boundary:
                                                            -cfg.held_out]
    result = Construction(None, "", float(held_inner.mean()), float(held_boundary.mean()))
    if not right[fitting].all():
        result.reason = "not separable"
    elif not held_inner.all():
        result.reason = "held-out inner points on the boundary side"
    else:
        weight = torch.as_tensor(w, dtype=x.dtype, device=x.device)
        result.model = BinarizedModel(target.model, features, weight, b)
        known = torch.cat([x[None], boundary[: cfg.boundary]])
        if target.stochastic:
            votes = predict_draws(result.model, known, cfg.draws, 500, x.device).sum(0)
            result.x_votes, result.planted_votes = (votes[:2] / cfg.draws).tolist()
            decided = votes_decided(votes, cfg.draws)
            if decided[0] != -1:
                result.model, result.reason = None, "x not inner beyond doubt"
            elif (decided[1:] != 1).any():
                result.model, result.reason = None, "known adversarial example not one beyond doubt"
    return result


def attack_setting(params: dict[str, Any], stochastic: bool) -> str:
    """The attack's settings as a row shows them, e.g. '40 steps, step 0.01, EOT 16'."""
    shown = {"steps": "{} steps", "step_size": "step {:g}", "n_queries": "{} queries",
             "eot": "EOT {}" if stochastic else "", "restarts": "{} restarts"}
    parts = [form.format(params[key]) for key, form in shown.items()
             if form and key in params and not (key == "restarts" and params[key] == 1)]
    if params.get("loss", "ce") != "ce":
        parts.append(f"{params['loss']} loss")
    if params.get("random_start") is False:
        parts.append("no random start")
    if params.get("last_iterate"):
        parts.append("last iterate")
    return ", ".join(parts)


def correctly_classified(target: Target, x: torch.Tensor, y: torch.Tensor, draws: int,
                         device: str) -> torch.Tensor:
    """Indices of the images the model classifies correctly (by the majority of ``draws``
    passes for a random model)."""
    correct = predict_draws(target.model, x, draws, 500, device) == y.cpu()[None]
    return torch.nonzero(2 * correct.sum(0) > draws)[:, 0]


def run_binarization_test(target: Target, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                          config: BinarizationConfig | None = None, seed: int = 0,
                          device: str = "cpu") -> BinarizationResult:
    """The test on the first ``config.n`` correctly classified images of ``x``: the attack
    ``config.attack`` (with ``config.settings`` over its defaults) against each image's
    binarized model, its adversarial example scored on ``config.draws`` fresh passes (one for
    a deterministic model)."""
    cfg = config or BinarizationConfig()
    spec = get_attack(cfg.attack)
    params = attack_params(cfg.attack, **cfg.settings)
    draws = cfg.draws if target.stochastic else 1
    target.model.eval()
    rows, preds = [], []
    torch.manual_seed(seed)  # which images a random model gets right depends on its draws
    for index in correctly_classified(target, x, y, draws, device)[: cfg.n].tolist():
        gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
        torch.manual_seed(seed * 1_000_003 + index)  # the model's noise draws
        made = construct(target, x[index].to(device), eps, spec.norm, cfg, gen)
        row = {"index": index, "valid": made.model is not None, "reason": made.reason,
               "held_out_inner": made.held_out_inner,
               "held_out_boundary": made.held_out_boundary, "x_votes": made.x_votes,
               "planted_votes": made.planted_votes, "success": None}
        rows.append(row)
        if made.model is None:
            continue
        model = made.model
        binarized = Target(model, target.stochastic, 2, f"{target.name} binarized")
        start, zero = x[index : index + 1].to(device), torch.zeros(1, dtype=torch.long,
                                                                    device=device)
        torch.manual_seed(seed + index)
        adv = craft(cfg.attack, binarized, start, zero, [eps], params=params)[eps]
        torch.manual_seed(seed + index + 1)
        pred = predict_draws(model, adv, draws, 1, device)
        preds.append(pred)
        row["success"] = float((pred != 0).float().mean())
    samples = pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
    valid = len(preds)
    if valid:
        fields = accuracy_fields(torch.cat(preds, 1), torch.zeros(valid, dtype=torch.long))
        rate, low, high = (1 - fields["majority"], 1 - fields["majority_high"],
                           1 - fields["majority_low"])
    else:
        rate, low, high = float("nan"), 0.0, 1.0
    return BinarizationResult(cfg.attack, attack_setting(params, target.stochastic),
                              eps, valid, len(samples) - valid, rate, low, high,
                              cfg.threshold, samples)
