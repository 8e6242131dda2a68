"""Training lowers the loss; the three stages and the joint objective both run."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config
from torch import nn

from robbench.models.build import build_model
from robbench.models.config import ModelSpec, TrainConfig
from robbench.models.training import select_subsets, subset_sizes
from robbench.models.training_loop import train_model


def _loss(model, x, y):
    with model.fixed_noise(0) if hasattr(model, "fixed_noise") else torch.no_grad():
        return nn.functional.cross_entropy(model(x), y).item()


def test_a_few_training_steps_lower_the_loss(digits):
    x, y = digits.x_train[:256], digits.y_train[:256]
    for name, train in (
        ("convnet", TrainConfig(epochs=3, lr=5e-3)),
        ("shortrun", TrainConfig(objective="joint", epochs=3, lr=5e-3)),
        ("shortrun", TrainConfig(objective="stages", generative_epochs=1,
                                 discriminative_epochs=2, bptt_epochs=1, lr=5e-3)),
    ):
        torch.manual_seed(0)
        config = tiny_config(name, width=8, latent=8)
        model = build_model(config).eval()
        before = _loss(model, x, y)
        train_model(model, ModelSpec("digits", config, train), x, y, quiet=True)
        assert _loss(model, x, y) < before, (name, train.objective)


def test_stage_two_leaves_the_generator_untouched(digits):
    torch.manual_seed(0)
    config = tiny_config("shortrun")
    model = build_model(config)
    before = [p.clone() for p in model.generator.parameters()]
    train = TrainConfig(generative_epochs=0, discriminative_epochs=1, bptt_epochs=0)
    train_model(model, ModelSpec("digits", config, train), digits.x_train[:64],
                digits.y_train[:64], quiet=True)
    assert all(torch.equal(a, b) for a, b in zip(before, model.generator.parameters(),
                                                 strict=True))


def test_label_subsets_are_balanced_and_pool_contains_them(digits):
    spec = ModelSpec("digits", tiny_config("shortrun"), TrainConfig(labels=50, unlabelled=300))
    x_lab, y_lab, pool = select_subsets(spec, digits.x_train, digits.y_train)
    assert len(x_lab) == 50 and torch.bincount(y_lab, minlength=10).tolist() == [5] * 10
    assert len(pool) == 300
    assert torch.equal(pool[:50], x_lab)
    # the sizes the unlabelled study plans its steps with are the ones drawn
    assert subset_sizes(spec.train, len(digits.x_train), 10) == (50, 300)
    odd = TrainConfig(labels=57, unlabelled=None)
    x_lab, _, pool = select_subsets(ModelSpec("digits", spec.model, odd), digits.x_train,
                                    digits.y_train)
    assert subset_sizes(odd, len(digits.x_train), 10) == (len(x_lab), len(pool)) == (50, 1400)


@pytest.mark.parametrize(("labels", "message"), [
    (9, "labels 9 is fewer than the 10 classes"),
    (1360, "labels 1360 needs 136 images of every class but the smallest class has 135"),
])
def test_a_label_budget_no_balanced_set_can_take_is_refused(digits, labels, message):
    spec = ModelSpec("digits", tiny_config("shortrun"), TrainConfig(labels=labels))
    with pytest.raises(ValueError, match=message):
        select_subsets(spec, digits.x_train, digits.y_train)
    largest = ModelSpec("digits", spec.model, TrainConfig(labels=1350))
    assert len(select_subsets(largest, digits.x_train, digits.y_train)[0]) == 1350
