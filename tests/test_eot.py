"""Batched EOT: the gradient of M draws folded into one batch equals the mean of M single-draw
gradients with the same noise; EOT with M = 1 is plain (torchattacks) PGD given the same noise.

Equivalences of two code paths (or two libraries) are computed in float64: there, rounding and
the order of reductions (which differ between CPUs, BLAS kernels and thread counts) move a
result by about 1e-15 relative, even through a 20-step Langevin chain that amplifies float32's
rounding to 4e-5 on some CPUs, so a tolerance of 1e-6 can neither flake nor hide a difference in
what is computed (one attack step moves pixels by 0.01-0.3)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
import torchattacks
from conftest import ConfidentLinear, target

from robbench.attacks import eot as eot_module
from robbench.attacks.eot import cross_entropy_loss, eot_loss_grad, margin_loss, rows_per_pass
from robbench.attacks.pgd import pgd
from robbench.attacks.registry import attack_params, craft, get_attack
from robbench.attacks.threat_model import perturbation_norms
from robbench.models.shortrun import draw_langevin_noise

pytestmark = pytest.mark.equivalence

F64 = dict(atol=1e-6, rtol=0)
"""The tolerance of a float64 equivalence (see the module docstring)."""


def float64(model: torch.nn.Module) -> torch.nn.Module:
    """A float64 copy (the fixture stays as it is for the other tests)."""
    return copy.deepcopy(model).double()


def _single_draw_grad(model, x, y, noise, loss_fn):
    xv = x.clone().requires_grad_(True)
    logits = model.classify(model.infer(xv, noise=noise))
    return torch.autograd.grad(loss_fn(logits, y).sum(), xv)[0]


def test_batched_eot_gradient_equals_mean_of_single_draws(tiny_shortrun, digits):
    model = tiny_shortrun.double()
    x, y = digits.x_test[:4].double(), digits.y_test[:4]
    m, n, c = 3, len(x), model.config
    torch.manual_seed(1)
    full = draw_langevin_noise(c.langevin_steps, m * n, c.latent).double()
    for loss_fn in (cross_entropy_loss, margin_loss):
        _, grad, _ = eot_loss_grad(lambda xr: model.classify(model.infer(xr, noise=full)),
                                   x, y, eot=m, loss_fn=loss_fn)
        singles = [_single_draw_grad(model, x, y, full[:, i * n:(i + 1) * n], loss_fn)
                   for i in range(m)]
        expected = torch.stack(singles).mean(0)
        assert expected.abs().max() > 1e-6  # a real gradient, not zeros on both sides
        torch.testing.assert_close(grad, expected, **F64)


def test_eot_gradient_flows_through_every_langevin_step(tiny_shortrun, digits):
    x, y = digits.x_test[:4], digits.y_test[:4]
    _, grad, fooled = eot_loss_grad(tiny_shortrun, x, y, eot=3)
    assert grad.abs().sum() > 0
    assert ((fooled >= 0) & (fooled <= 1)).all()


def test_chunked_eot_equals_one_pass_on_a_deterministic_model(tiny_convnet, digits):
    model, x, y = float64(tiny_convnet), digits.x_test[:8].double(), digits.y_test[:8]
    loss_a, grad_a, _ = eot_loss_grad(model, x, y, eot=4)
    loss_b, grad_b, _ = eot_loss_grad(model, x, y, eot=4, max_batch=16)  # 2 per pass
    torch.testing.assert_close(loss_a, loss_b, **F64)
    torch.testing.assert_close(grad_a, grad_b, **F64)


@contextmanager
def count_rows(model: torch.nn.Module) -> Iterator[list[int]]:
    """The rows of every pass through ``model`` inside the block."""
    rows: list[int] = []
    hook = model.register_forward_pre_hook(lambda _, args: rows.append(len(args[0])))
    try:
        yield rows
    finally:
        hook.remove()


def test_examples_are_split_when_one_draw_of_the_batch_exceeds_the_cap(tiny_convnet, digits):
    model, x, y = float64(tiny_convnet), digits.x_test[:8].double(), digits.y_test[:8]
    for direction_only in (False, True):
        loss_a, grad_a, fooled_a = eot_loss_grad(model, x, y, eot=2,
                                                 direction_only=direction_only)
        with count_rows(model) as rows:
            loss_b, grad_b, fooled_b = eot_loss_grad(model, x, y, eot=2, max_batch=3,
                                                     direction_only=direction_only)
        assert rows == [3, 3, 2, 3, 3, 2]
        torch.testing.assert_close(loss_a, loss_b, **F64)
        torch.testing.assert_close(grad_a, grad_b, **F64)
        torch.testing.assert_close(fooled_a, fooled_b, **F64)


def test_cpu_passes_are_capped_by_pixels_unless_max_batch_is_given(tiny_convnet, digits,
                                                                   monkeypatch):
    x, y = digits.x_test[:8], digits.y_test[:8]  # 8 x 8 digits: 64 pixels per row
    assert rows_per_pass(x, None) == eot_module.CPU_PIXEL_ROWS // 64
    assert rows_per_pass(x, 5) == 5
    monkeypatch.setattr(eot_module, "CPU_PIXEL_ROWS", 64 * 20)  # 20 rows per pass
    with count_rows(tiny_convnet) as rows:
        eot_loss_grad(tiny_convnet, x, y, eot=6)
    assert rows == [16, 16, 16]  # two draws of the 8 examples per pass
    with count_rows(tiny_convnet) as rows:
        eot_loss_grad(tiny_convnet, x, y, eot=6, max_batch=48)
    assert rows == [48]


def test_eot_1_equals_torchattacks_pgd_given_the_same_noise(shipped_shortrun, digits):
    model, x, y = float64(shipped_shortrun), digits.x_test[:8].double(), digits.y_test[:8]
    with model.fixed_noise(7):
        torch.manual_seed(3)
        expected = torchattacks.PGD(model, eps=0.1, alpha=0.03, steps=3,
                                    random_start=True)(x, y)
        torch.manual_seed(3)
        ours = pgd(model, x, y, eps=0.1, steps=3, step_size=0.03, eot=1)
        torch.manual_seed(3)
        registry = craft("eot-pgd", target(model), x, y, [0.1],
                         params=attack_params("eot-pgd", eot=1, steps=3, step_size=0.03))[0.1]
    assert model.noise_seed is None
    assert not torch.equal(expected, x)
    torch.testing.assert_close(ours, expected, **F64)
    torch.testing.assert_close(registry, expected, **F64)


def test_eot_pgd_l2_with_one_draw_equals_torchattacks_pgdl2(shipped_shortrun, digits):
    """The registered EOT-PGD-L2 is robbench's engine at L2; with one draw of a fixed chain it
    takes torchattacks' PGDL2 steps (no random start, whose draws the two take differently).
    Besides rounding, torchattacks adds 1e-10 to the gradient's norm (relative 1e-10 / |g|,
    about 3e-8 on these pixels after three steps), well inside the float64 tolerance."""
    model, x, y = float64(shipped_shortrun), digits.x_test[:8].double(), digits.y_test[:8]
    spec = get_attack("eot-pgd-l2")
    params = attack_params("eot-pgd-l2", eot=1, steps=3, step_size=0.3, random_start=False)
    with model.fixed_noise(7):
        expected = torchattacks.PGDL2(model, eps=1.0, alpha=0.3, steps=3,
                                      random_start=False)(x, y)
        ours = craft("eot-pgd-l2", target(model), x, y, [1.0], params=params)[1.0]
    assert spec.norm == "l2" and "torchattacks" not in spec.backends
    assert not torch.equal(expected, x)
    torch.testing.assert_close(ours, expected, **F64)


def test_restarts_keep_the_best_restart_per_example(tiny_convnet, digits):
    x, y = digits.x_test[:32], digits.y_test[:32]
    torch.manual_seed(0)
    one = pgd(tiny_convnet, x, y, eps=0.05, steps=2, step_size=0.02, restarts=1)
    torch.manual_seed(0)
    three = pgd(tiny_convnet, x, y, eps=0.05, steps=2, step_size=0.02, restarts=3)
    wrong = [(tiny_convnet(a).argmax(1) != y).sum().item() for a in (one, three)]
    assert wrong[1] >= wrong[0]  # restart 1 is the same run; the best of 3 cannot be worse


def test_direction_only_is_the_eot_mean_gradient_scaled_per_example(tiny_shortrun, digits):
    """Rescaling the output gradient per example must keep every draw's weight in the mean,
    across chunks of draws too."""
    x, y = digits.x_test[:6], digits.y_test[:6]
    for loss_fn in (cross_entropy_loss, margin_loss):
        torch.manual_seed(4)
        _, raw, _ = eot_loss_grad(tiny_shortrun, x, y, eot=4, loss_fn=loss_fn, max_batch=12)
        torch.manual_seed(4)
        _, unit, _ = eot_loss_grad(tiny_shortrun, x, y, eot=4, loss_fn=loss_fn, max_batch=12,
                                   direction_only=True)
        peak = raw.flatten(1).abs().amax(1)
        assert (peak > 1e-6).all()
        torch.testing.assert_close(unit.flatten(1).abs().amax(1), torch.ones(6))
        torch.testing.assert_close(unit, raw / peak.view(-1, 1, 1, 1), atol=1e-4, rtol=0)


def test_engine_pgd_moves_examples_whose_float32_softmax_saturates():
    """With a saturated softmax float32 cross-entropy has a zero gradient; the engine's PGD
    (EOT-PGD, transfer, the diagnostics) still takes full steps."""
    model = ConfidentLinear(margin=200.0)
    x, y = torch.full((4, 1, 4, 4), 0.5), torch.zeros(4, dtype=torch.long)
    assert not eot_loss_grad(model, x, y)[1].any()  # the plain gradient is exactly zero
    for norm, eps, step in (("linf", 0.1, 0.05), ("l2", 1.0, 0.5)):
        adv = pgd(model, x, y, eps=eps, norm=norm, steps=3, step_size=step, random_start=False,
                  eot=2, max_batch=4)
        assert (perturbation_norms(x, adv, norm) > 0.99 * eps).all(), norm
