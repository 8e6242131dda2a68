"""Randomised and non-differentiable defenses from the literature, as wrappers around any
classifier, and BPDA to attack through a non-differentiable step.

    import robbench
    sap = robbench.load_model("sap", "mnist")          # a defense of the zoo, by name
    mine = robbench.defenses.Quantize(my_model, levels=2, bpda=True)

Each defense is an ``nn.Module`` mapping images in [0, 1] to logits; the random ones declare
``stochastic = True`` and offer ``fixed_noise(seed)``. docs/defenses.md explains each and how
robbench attacks it.
"""

from robbench.defenses.activation_noise import StochasticActivationPruning, TestTimeDropout
from robbench.defenses.bpda import bpda
from robbench.defenses.catalog import DEFENSE_NAMES, DEFENSES
from robbench.defenses.input_transforms import NoiseInjection, Quantize
from robbench.defenses.purify import Purify
from robbench.defenses.resize_pad import RandomResizePad

__all__ = ["DEFENSES", "DEFENSE_NAMES", "NoiseInjection", "Purify", "Quantize",
           "RandomResizePad", "StochasticActivationPruning", "TestTimeDropout", "bpda"]
