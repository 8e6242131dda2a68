"""The defense zoo's table: each defense by name, its settings per dataset, its verdict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from robbench.defenses.activation_noise import StochasticActivationPruning, TestTimeDropout
from robbench.defenses.input_transforms import NoiseInjection, Quantize
from robbench.defenses.resize_pad import RandomResizePad

# Canvas width of random resize-pad per input width (Xie et al.: 299 -> 331, about +10%; the
# ConvNet needs a multiple of 4, so 8 -> 12 and 28 -> 32).
RESIZE_CANVAS = {8: 12, 28: 32}
IMAGE_WIDTH = {"digits": 8, "mnist": 28, "fashion-mnist": 28}
DEFENSE_DATASETS = tuple(IMAGE_WIDTH)


@dataclass(frozen=True)
class DefenseEntry:
    """A named defense: how to build it, whether its base trains with it, the literature."""

    name: str
    description: str
    settings: Callable[[str], dict[str, Any]]
    trained: bool  # its base is a ConvNet trained through the defense (own checkpoint)
    verdict: str  # what the literature found, with the citation


def _noise(dataset: str) -> dict[str, Any]:
    return {"sigma": 0.3}


def _levels(dataset: str) -> int:
    """Xu et al. pick the bit depth per dataset to keep clean accuracy: 1 bit on MNIST; on the
    8x8 digits (17 grey levels) 1 bit costs 8 points, 2 bits one."""
    return 4 if dataset == "digits" else 2


def _resize(dataset: str) -> dict[str, Any]:
    return {"out_size": RESIZE_CANVAS[IMAGE_WIDTH[dataset]]}


DEFENSES: dict[str, DefenseEntry] = {e.name: e for e in [
    DefenseEntry("noise", "Gaussian input noise, base trained with it (Liu et al. 2018)",
                 _noise, True,
                 "no break of input noise alone published; as randomized smoothing's base it "
                 "certifies small L2 radii (Cohen et al. 2019)"),
    DefenseEntry("sap", "stochastic activation pruning on the ConvNet (Dhillon et al. 2018)",
                 lambda d: {"fraction": 2.0}, False,
                 "broken: 0% at eps 8/255 on CIFAR-10 with EOT (Athalye et al. 2018)"),
    DefenseEntry("resize-pad", "random resizing and padding, base trained with it "
                 "(Xie et al. 2018)", _resize, True,
                 "broken: 0% at eps 8/255 on ImageNet with EOT (Athalye et al. 2018)"),
    DefenseEntry("quantize", "bit-depth reduction before the ConvNet (Xu et al. 2018)",
                 lambda d: {"levels": _levels(d), "bpda": False}, False,
                 "broken on ImageNet: bit depth as in Guo et al. 2018 to 0% by BPDA (Athalye "
                 "et al. 2018); one bit keeps MNIST robust under BPDA (Chen et al. 2019)"),
    DefenseEntry("quantize-bpda", "the same, attacked through robbench.bpda",
                 lambda d: {"levels": _levels(d), "bpda": True}, False,
                 "BPDA is how Athalye et al. (2018) broke input transformations; one bit on "
                 "MNIST withstands it (Chen et al. 2019)"),
    DefenseEntry("purify", "Short Run generator reconstruction, then the ConvNet "
                 "(Samangouei et al. 2018's idea)", lambda d: {}, False,
                 "Defense-GAN partly broken through its projection: 55% left on MNIST at L2 "
                 "eps 0.005 (Athalye et al. 2018)"),
    DefenseEntry("dropout", "dropout kept on at test time on the ConvNet", lambda d: {"p": 0.05},
                 False, "randomness the base was not trained for; EOT breaks such stochastic "
                 "defenses (Athalye et al. 2018; Tramèr et al. 2020)"),
]}
DEFENSE_NAMES = tuple(DEFENSES)
TRAINED_DEFENSES = tuple(n for n, e in DEFENSES.items() if e.trained)


def check_defense(name: str, dataset: str | None = None) -> DefenseEntry:
    """The entry of defense ``name``; a ValueError naming the value if it (or ``dataset``) is
    not in the zoo."""
    if dataset is not None and dataset not in IMAGE_WIDTH:
        raise ValueError(f"dataset {dataset!r} has no defenses; allowed: "
                         f"{', '.join(DEFENSE_DATASETS)}")
    if name not in DEFENSES:
        raise ValueError(f"defense {name!r} is unknown; allowed: {', '.join(DEFENSES)}")
    return DEFENSES[name]


def wrap(name: str, base: nn.Module, settings: dict[str, Any]) -> nn.Module:
    """Defense ``name`` around ``base`` (for ``purify``: a (generator, classifier) pair's
    classifier, with the generator's settings in ``settings``)."""
    if name == "noise":
        return NoiseInjection(base, **settings)
    if name == "sap":
        return StochasticActivationPruning(base, **settings)
    if name == "resize-pad":
        return RandomResizePad(base, **settings)
    if name in ("quantize", "quantize-bpda"):
        return Quantize(base, **settings)
    if name == "dropout":
        return TestTimeDropout(base, **settings)
    raise ValueError(f"defense {name!r} has no single base; allowed: "
                     f"{', '.join(n for n in DEFENSES if n != 'purify')}")
