"""Shapes, ranges and gradients of the ConvNet and the Short Run classifier."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config
from torch import nn

from robbench.models.build import build_model
from robbench.models.shortrun import draw_langevin_noise, langevin_infer


def test_logits_shapes_and_sample_ranges(tiny_convnet, tiny_shortrun, digits):
    x = digits.x_test[:5]
    assert tiny_convnet(x).shape == (5, 10)
    assert tiny_shortrun(x).shape == (5, 10)
    samples = tiny_shortrun.sample(6)
    assert samples.shape == (6, 1, 8, 8)
    assert samples.min() >= 0 and samples.max() <= 1
    assert tiny_shortrun.reconstruct(x).shape == x.shape
    assert tiny_shortrun.infer(x, n_chains=3).shape == (5, 3, 4)


def test_one_definition_serves_mnist_and_color_shapes():
    for channels, size in ((1, 28), (3, 32)):
        for name in ("convnet", "shortrun"):
            model = build_model(tiny_config(name, channels=channels, image_size=size))
            assert model(torch.rand(2, channels, size, size)).shape == (2, 10)


def test_prediction_is_stochastic_unless_noise_is_fixed(tiny_shortrun, digits):
    x = digits.x_test[:8]
    assert not torch.equal(tiny_shortrun(x), tiny_shortrun(x))
    with tiny_shortrun.fixed_noise(3):
        assert torch.equal(tiny_shortrun(x), tiny_shortrun(x))


def test_inference_runs_under_no_grad(tiny_shortrun, digits):
    with torch.no_grad():
        logits = tiny_shortrun(digits.x_test[:4])
    assert not logits.requires_grad and torch.isfinite(logits).all()


def test_chain_combination_modes(digits):
    x = digits.x_test[:6]
    for combine in ("mean_logits", "mean_z", "vote"):
        torch.manual_seed(0)
        model = build_model(tiny_config("shortrun", n_chains=4, combine=combine)).eval()
        logits = model(x)
        assert logits.shape == (6, 10) and torch.isfinite(logits).all()


def _input_grad(model, x, y, seed):
    x = x.clone().requires_grad_(True)
    with model.fixed_noise(seed):
        loss = nn.functional.cross_entropy(model(x), y)
    return torch.autograd.grad(loss, x)[0]


def test_input_gradient_flows_through_the_chain_and_depends_on_k(digits):
    x, y = digits.x_test[:8], digits.y_test[:8]
    grads = {}
    for k in (1, 6):
        torch.manual_seed(0)
        model = build_model(tiny_config("shortrun", langevin_steps=k)).eval()
        grads[k] = _input_grad(model, x, y, seed=1)
        assert grads[k].abs().sum() > 0
    assert not torch.allclose(grads[1], grads[6])


@pytest.mark.equivalence
def test_input_gradient_matches_finite_differences(digits):
    torch.manual_seed(0)
    model = build_model(tiny_config("shortrun")).double().eval()
    x, y = digits.x_test[:2].double(), digits.y_test[:2]
    grad = _input_grad(model, x, y, seed=2)
    direction = torch.randn_like(x)
    h = 1e-5
    with model.fixed_noise(2), torch.no_grad():
        up = nn.functional.cross_entropy(model(x + h * direction), y)
        down = nn.functional.cross_entropy(model(x - h * direction), y)
    numeric = (up - down) / (2 * h)
    assert torch.allclose((grad * direction).sum(), numeric, rtol=1e-4, atol=1e-8)


def test_cross_entropy_reaches_the_generator_through_the_chain(tiny_shortrun, digits):
    model = tiny_shortrun.train()
    x, y = digits.x_test[:8], digits.y_test[:8]
    nn.functional.cross_entropy(model(x), y).backward()
    gen_grads = [p.grad for p in model.generator.parameters()]
    assert all(g is not None for g in gen_grads)
    assert sum(g.abs().sum() for g in gen_grads) > 0


def test_non_differentiable_inference_cuts_the_graph(tiny_shortrun, digits):
    x = digits.x_test[:4].clone().requires_grad_(True)
    z = tiny_shortrun.infer(x, differentiable=False)
    assert not z.requires_grad


@pytest.mark.equivalence
def test_langevin_update_is_the_documented_one(tiny_shortrun, digits):
    """One step: z1 = z0 - delta * grad E(z0) + sqrt(2 delta) xi, E = |z|^2/2 + |x-g(z)|^2/2s^2."""
    g, x = tiny_shortrun.generator.double(), digits.x_test[:3].double()  # float64: the two
    noise = draw_langevin_noise(1, 3, 4).double()  # computations differ only in rounding
    z1 = langevin_infer(g, x, steps=1, step_size=0.01, sigma=0.2, noise=noise,
                        differentiable=False)
    z0 = noise[0].clone().requires_grad_(True)
    energy = 0.5 * (z0**2).sum() + ((x - g(z0)) ** 2).sum() / (2 * 0.2**2)
    (grad,) = torch.autograd.grad(energy, z0)
    expected = noise[0] - 0.01 * grad + (2 * 0.01) ** 0.5 * noise[1]
    assert torch.allclose(z1, expected, atol=1e-6)


THESIS_TINY = dict(arch="thesis", channels=3, image_size=28, width=3, latent=5,
                   head_hidden=(6, 4), sigma=3.2)


@pytest.mark.equivalence
@pytest.mark.parametrize("arch", ["mirror", "thesis"])
def test_fast_chain_matches_the_autograd_reference(digits, arch):
    """The hand-written energy gradient gives the same chain and attack gradient as autograd."""
    x, y = digits.x_test[:8], digits.y_test[:8]
    overrides = {}
    if arch == "thesis":
        x, y = torch.rand(4, 3, 28, 28, generator=torch.Generator().manual_seed(1)), y[:4]
        overrides = THESIS_TINY
    for act in ("mish", "leaky_relu"):
        torch.manual_seed(0)
        model = build_model(tiny_config("shortrun", activation=act, **overrides)).double().eval()
        grads = []
        for reference in (True, False):
            model.reference = reference
            grads.append(_input_grad(model, x.double(), y, seed=4))
        assert torch.allclose(grads[0], grads[1], rtol=1e-6, atol=1e-9), act
        model.train()
        for reference in (True, False):
            model.reference = reference
            model.zero_grad()
            with model.fixed_noise(5):
                nn.functional.cross_entropy(model(x.double()), y).backward()
            grads.append(torch.cat([p.grad.flatten() for p in model.generator.parameters()]))
        assert torch.allclose(grads[2], grads[3], rtol=1e-6, atol=1e-9), act


@pytest.mark.equivalence
def test_dense_deconvolutions_equal_the_convolutions(tiny_shortrun, digits):
    g, x = tiny_shortrun.generator.double(), digits.x_test[:5].double()
    z = torch.randn(5, 4, dtype=torch.float64)
    dense = g.dense_deconvs()
    assert all(d is not None for d in dense)
    assert torch.allclose(g.energy_grad(z, x, 100.0, dense), g.energy_grad(z, x, 100.0),
                          rtol=1e-10, atol=1e-10)
    mnist = build_model(tiny_config("shortrun", image_size=28, width=32)).generator
    assert mnist.dense_deconvs()[0] is None  # large maps stay convolutions
