"""robbench's own APGD, AutoAttack-rand, Square and CW-L2, and PGD's best-iterate mode: threat
models, the papers' schedules, the DLR loss, best-iterate tracking on stochastic models, no
gradients and no early stop in Square, CW's within-budget rule, deterministic PGD unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robbench.attacks.apgd import apgd, apgd_checkpoints
from robbench.attacks.autoattack import autoattack_rand
from robbench.attacks.cw import cw_l2
from robbench.attacks.eot import (
    LOSSES,
    attack_score,
    cross_entropy_loss,
    dlr_loss,
    eot_loss_grad,
    margin_loss,
)
from robbench.attacks.pgd import _random_start, pgd, project
from robbench.attacks.square import square, square_p
from robbench.attacks.threat_model import check_threat_model

EPS = {"linf": 0.3, "l2": 1.5}


def _attacks(norm: str, stochastic: bool):
    """Each attack at a tiny size, as (name, fn(model, x, y) -> list of (eps, x_adv))."""
    eps = EPS[norm]
    kw = dict(eps=eps, norm=norm, stochastic=stochastic, eot=2 if stochastic else 1,
              max_batch=12)
    return [
        ("pgd", lambda m, x, y: [(eps, pgd(m, x, y, steps=3, step_size=eps / 2, **kw))]),
        ("apgd-ce", lambda m, x, y: [(eps, apgd(m, x, y, steps=5, restarts=2, **kw))]),
        ("apgd-dlr", lambda m, x, y: [(eps, apgd(m, x, y, steps=5, loss="dlr", **kw))]),
        ("autoattack", lambda m, x, y: [(eps, autoattack_rand(m, x, y, steps=4, **kw))]),
        ("square", lambda m, x, y: [(eps, square(m, x, y, n_queries=15, restarts=2, **kw))]),
    ]


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("model_name", ["tiny_convnet", "tiny_shortrun"])
def test_every_attack_respects_its_threat_model(norm, model_name, request, digits):
    model = request.getfixturevalue(model_name)
    stochastic = model_name == "tiny_shortrun"
    x, y = digits.x_test[:8], digits.y_test[:8]
    torch.manual_seed(0)
    for name, attack in _attacks(norm, stochastic):
        for eps, x_adv in attack(model, x, y):
            check_threat_model(x, x_adv, norm, eps)
            assert not torch.equal(x_adv, x), name
    if norm == "l2":
        eps_list = [0.3, 1.5]
        out = cw_l2(model, x, y, eps_list, steps=5, lr=0.1, eot=2 if stochastic else 1,
                    stochastic=stochastic, max_batch=12)
        for eps, x_adv in zip(eps_list, out, strict=True):
            check_threat_model(x, x_adv, "l2", eps)


def test_apgd_checkpoints_are_the_papers_for_100_steps():
    # p = 0, .22, .41, .57, .70, .80, .87, .93, .99 (the increments shrink by .03 to .06).
    assert apgd_checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(1000) == [0, 220, 410, 570, 700, 800, 870, 930, 990]


def test_square_schedule_halves_p_at_the_papers_iterations_rescaled():
    assert [square_p(i, 10000) for i in (0, 10, 11, 50, 51, 8000, 8001)] == [
        0.8, 0.8, 0.4, 0.4, 0.2, 0.8 / 256, 0.8 / 512]
    assert square_p(1, 1000) == 0.8 and square_p(2, 1000) == 0.4  # 20 of 10,000 > 10


def test_dlr_loss_on_hand_made_logits():
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0], [3.0, 1.0, 2.0, 0.0]])
    y = torch.tensor([0, 3])
    # y = 0: -(3 - 2) / (3 - 1); y = 3: -(0 - 3) / (3 - 1).
    torch.testing.assert_close(dlr_loss(logits, y), torch.tensor([-0.5, 1.5]))
    torch.testing.assert_close(dlr_loss(2 * logits + 5, y), dlr_loss(logits, y))
    assert LOSSES["dlr"] is dlr_loss


class NoisyBump(nn.Module):
    """Two classes; class 1 (the wrong one for y = 0) wins where the pixel mean s is near 0.5:
    logit_1 - logit_0 = 20 (0.2 - |s - 0.5|) + N(0, 0.25^2), fresh noise on every call."""

    stochastic = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1).mean(1)
        diff = 20 * (0.2 - (s - 0.5).abs()) + 0.25 * torch.randn_like(s)
        return torch.stack([torch.zeros_like(diff), diff], 1)


def _fresh_fooled(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return eot_loss_grad(model, x_adv, y, eot=200, with_grad=False)[2]


def test_stochastic_pgd_returns_its_best_iterate_not_its_last():
    """Steps of 0.3 from s = 0.25 overshoot: x1 (s = 0.55) is misclassified, x2 (s = 0.25)
    is not. stochastic=False returns x2, as torchattacks' PGD would; stochastic=True x1."""
    model = NoisyBump()
    x, y = torch.full((6, 1, 2, 2), 0.25), torch.zeros(6, dtype=torch.long)
    kw = dict(eps=0.35, steps=2, step_size=0.3, random_start=False, eot=8)
    torch.manual_seed(0)
    last = pgd(model, x, y, **kw)
    torch.manual_seed(0)
    best = pgd(model, x, y, stochastic=True, **kw)
    check_threat_model(x, best, "linf", 0.35)
    torch.testing.assert_close(last, x)
    fooled_best, fooled_last = _fresh_fooled(model, best, y), _fresh_fooled(model, last, y)
    print("PGD fresh fooled fraction: best", fooled_best.mean().item(),
          "last", fooled_last.mean().item())
    assert (fooled_best >= fooled_last).all()
    assert fooled_best.mean() > 0.9 and fooled_last.mean() < 0.1


def test_stochastic_apgd_returns_its_best_iterate_not_its_last():
    """APGD's first step of 2 eps from a start near s = 0.5 (misclassified) lands on a corner
    of the ball (s = 0.2 or 0.8, classified correctly): the returned iterate is the start."""
    model = NoisyBump()
    x, y = torch.full((16, 1, 2, 2), 0.5), torch.zeros(16, dtype=torch.long)
    torch.manual_seed(0)
    best = apgd(model, x, y, eps=0.3, steps=1, eot=8, stochastic=True)
    check_threat_model(x, best, "linf", 0.3)
    # The last iterate is x - eps or x + eps everywhere (all pixels share the gradient sign).
    fooled_corner = torch.maximum(_fresh_fooled(model, x - 0.3, y),
                                  _fresh_fooled(model, x + 0.3, y))
    fooled_best = _fresh_fooled(model, best, y)
    print("APGD fresh fooled fraction: best", fooled_best.mean().item(),
          "last", fooled_corner.mean().item())
    assert fooled_best.mean() > fooled_corner.mean() + 0.5
    assert (fooled_best + 0.1 >= fooled_corner).all()


class NoGradModel(nn.Module):
    """Raises on any forward pass that could build a graph (a gradient-based attack)."""

    def __init__(self, model: nn.Module, stochastic: bool) -> None:
        super().__init__()
        self.model = model
        self.stochastic = stochastic
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.requires_grad:
            raise AssertionError("Square asked for a gradient")
        self.rows += x.shape[0]
        return self.model(x)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_square_queries_losses_only_and_spends_its_budget_on_a_stochastic_model(
        norm, tiny_shortrun, tiny_convnet, digits):
    x, y = digits.x_test[:6], digits.y_test[:6]
    n_queries, eot = 12, 3
    stochastic = NoGradModel(tiny_shortrun, stochastic=True)
    torch.manual_seed(0)
    adv = square(stochastic, x, y, eps=EPS[norm], norm=norm, n_queries=n_queries, eot=eot,
                 stochastic=True)
    check_threat_model(x, adv, norm, EPS[norm])
    # Every query is one pass of eot draws of every example: no early stop.
    assert stochastic.rows == n_queries * eot * len(x)
    deterministic = NoGradModel(tiny_convnet, stochastic=False)
    torch.manual_seed(0)
    adv = square(deterministic, x, y, eps=EPS[norm], norm=norm, n_queries=n_queries)
    fooled = tiny_convnet(adv).argmax(1) != y
    assert fooled.any()  # the untrained tiny ConvNet is mostly wrong already
    assert deterministic.rows < n_queries * len(x)  # fooled examples stop


class AlwaysRight(nn.Module):
    """Predicts class 0 everywhere: no adversarial example exists for y = 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1).sum(1, keepdim=True)
        return torch.cat([z + 100.0, z.expand(-1, 9)], 1)


def test_cw_keeps_the_clean_image_where_no_adversarial_lies_within_eps(shipped_convnet,
                                                                       digits):
    x, y = digits.x_test[:6], torch.zeros(6, dtype=torch.long)
    for x_adv in cw_l2(AlwaysRight(), x, y, [0.5, 3.0], steps=10, lr=0.1):
        assert torch.equal(x_adv, x)
    x, y = digits.x_test[:48], digits.y_test[:48]
    right = shipped_convnet(x).argmax(1) == y
    tight, loose = cw_l2(shipped_convnet, x, y, [1e-3, 2.0], steps=30, lr=0.05)
    assert torch.equal(tight[right], x[right])
    fooled = shipped_convnet(loose).argmax(1) != y
    changed = (loose != x).flatten(1).any(1)
    assert fooled.sum() > 20 and torch.equal(fooled, changed)  # changed only where it fools
    check_threat_model(x, loose, "l2", 2.0)


def test_autoattack_rand_is_at_least_apgd_ce_on_a_deterministic_model(shipped_convnet, digits):
    x, y = digits.x_test[:48], digits.y_test[:48]
    kw = dict(eps=0.1, steps=10, eot=1, stochastic=False)
    torch.manual_seed(0)
    ce = apgd(shipped_convnet, x, y, **kw)
    torch.manual_seed(0)
    both = autoattack_rand(shipped_convnet, x, y, **kw)
    fooled_ce = shipped_convnet(ce).argmax(1) != y
    fooled_both = shipped_convnet(both).argmax(1) != y
    assert (fooled_both >= fooled_ce).all()  # the same APGD-CE run, then DLR on the rest
    check_threat_model(x, both, "linf", 0.1)


def _pgd_before(model, x, y, *, eps, norm="linf", steps=40, step_size=0.01, random_start=True,
                eot=1, restarts=1, loss_fn=cross_entropy_loss, max_batch=None):
    """robbench's PGD before ``stochastic`` was added (commit 77db47c), verbatim."""
    eps_t = torch.as_tensor(eps, dtype=x.dtype, device=x.device).expand(x.shape[0])
    alpha = torch.as_tensor(step_size, dtype=x.dtype, device=x.device).expand(x.shape[0])
    alpha = alpha.reshape(-1, *([1] * (x.dim() - 1)))
    best = x.clone()
    best_score = torch.full((x.shape[0],), -float("inf"), device=x.device)
    for _ in range(restarts):
        x_adv = _random_start(x, eps_t, norm) if random_start else x.clone()
        for _ in range(steps):
            _, grad, _ = eot_loss_grad(model, x_adv, y, eot=eot, loss_fn=loss_fn,
                                       max_batch=max_batch, direction_only=True)
            if norm == "linf":
                step = grad.sign()
            else:
                g_norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
                step = grad / g_norm.view(-1, *([1] * (x.dim() - 1)))
            x_adv = project(x, x_adv + alpha * step, eps_t, norm)
        if restarts == 1:
            return x_adv
        loss, _, fooled = eot_loss_grad(model, x_adv, y, eot=eot, loss_fn=loss_fn,
                                        max_batch=max_batch, with_grad=False)
        score = fooled + 1e-3 * torch.tanh(loss)
        better = score > best_score
        best[better] = x_adv[better]
        best_score = torch.where(better, score, best_score)
    return best


@pytest.mark.parametrize("model_name", ["tiny_convnet", "tiny_shortrun"])
def test_deterministic_pgd_is_bit_identical_to_before(model_name, request, digits):
    model = request.getfixturevalue(model_name)
    x, y = digits.x_test[:8], digits.y_test[:8]
    for norm, eps, step in (("linf", 0.1, 0.03), ("l2", 1.0, 0.3)):
        for restarts, eot, loss_fn in ((1, 1, cross_entropy_loss), (3, 2, margin_loss)):
            kw = dict(eps=eps, norm=norm, steps=3, step_size=step, restarts=restarts,
                      eot=eot, loss_fn=loss_fn, max_batch=12)
            torch.manual_seed(5)
            before = _pgd_before(model, x, y, **kw)
            torch.manual_seed(5)
            now = pgd(model, x, y, **kw)
            torch.manual_seed(5)
            explicit = pgd(model, x, y, stochastic=False, **kw)
            assert torch.equal(before, now) and torch.equal(before, explicit), (norm, restarts)


def test_attack_score_is_lexicographic():
    fooled = torch.tensor([0.5, 0.5, 0.75])
    loss = torch.tensor([-50.0, 50.0, -50.0])
    score = attack_score(loss, fooled)
    assert score[0] < score[1] < score[2]
