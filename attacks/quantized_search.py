"""The exact L∞ robustness of a bit-depth-reduction defense, by enumeration.

``Quantize(base, levels)`` shows its base only the quantised image, and an L∞ ball of radius
eps lets each pixel reach a contiguous range of levels: on MNIST at one bit, only the pixels
within eps of 0.5 can change at all. Where the ranges multiply to a few thousand quantised
images, all of them can be classified, and whether the example is robust is then known
exactly: a ground truth that an attack on the defense (PGD through ``robbench.bpda``) must
reach, and the way robbench checks that a quantised model's high robust accuracy is the
defense's and not the attack's weakness. Chen et al. ("Improving Adversarial Robustness by
Data-Specific Discretization", 2019) found one bit keeps MNIST robust under BPDA.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from robbench.defenses.input_transforms import reduce_bit_depth


def reachable_levels(x: torch.Tensor, eps: float, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel, the lowest and highest quantised value of any image in the L∞ ball of radius
    ``eps`` around ``x`` and in [0, 1] (the quantiser is monotone, so every level between is
    reached too)."""
    return (reduce_bit_depth((x - eps).clamp(0, 1), levels),
            reduce_bit_depth((x + eps).clamp(0, 1), levels))


def reachable_count(x: torch.Tensor, eps: float, levels: int) -> torch.Tensor:
    """Per example, how many distinct quantised images its ball reaches (float: may be huge)."""
    return _image_count(*reachable_levels(x, eps, levels), levels)


def _image_count(lo: torch.Tensor, hi: torch.Tensor, levels: int) -> torch.Tensor:
    choices = ((hi - lo) * (levels - 1)).round() + 1
    return choices.flatten(1).double().log().sum(1).exp().round()


@torch.no_grad()
def exhaustive_quantized_robustness(
    base: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    levels: int,
    max_images: int = 4096,
    batch: int = 1024,
) -> torch.Tensor:
    """Per example, 1.0 if ``base`` classifies every quantised image in its L∞ ball as the
    label, 0.0 if it misclassifies one, NaN where the ball reaches more than ``max_images``
    quantised images (not searched).

    This is the exact robust accuracy of ``Quantize(base, levels)`` (deterministic) at ``eps``
    on the searched examples: no attack can do better, and a sound attack cannot do worse.
    """
    if not eps >= 0:
        raise ValueError(f"eps {eps!r} must be >= 0")
    if max_images < 1:
        raise ValueError(f"max_images {max_images!r} must be >= 1")
    lo, hi = reachable_levels(x, eps, levels)
    counts = _image_count(lo, hi, levels)
    out = torch.full((len(x),), float("nan"))
    for i in range(len(x)):
        if counts[i] > max_images:
            continue
        out[i] = float(_all_classified(base, lo[i], hi[i], int(y[i]), levels, batch))
    return out


def _all_classified(base: nn.Module, lo: torch.Tensor, hi: torch.Tensor, label: int,
                    levels: int, batch: int) -> bool:
    """Whether every quantised image between ``lo`` and ``hi`` (one example) is classified
    ``label``: the images enumerated in mixed radix over the pixels that can move."""
    flat_lo, flat_hi = lo.flatten(), hi.flatten()
    moving = (flat_hi > flat_lo).nonzero().flatten()
    radix = ((flat_hi[moving] - flat_lo[moving]) * (levels - 1)).round().long() + 1
    total = math.prod(radix.tolist())
    place = torch.cumprod(torch.cat([radix.new_ones(1), radix[:-1]]), 0)
    for start in range(0, total, batch):
        index = torch.arange(start, min(start + batch, total))
        digits = (index[:, None] // place[None, :]) % radix[None, :]
        images = flat_lo.repeat(len(index), 1)
        images[:, moving] = flat_lo[moving] + digits.to(lo.dtype) / (levels - 1)
        if (base(images.view(len(index), *lo.shape)).argmax(1) != label).any():
            return False
    return True
