"""Purification through a generative model: classify g(z_K(x)), the generator's
reconstruction of x by short-run Langevin inference."""

from __future__ import annotations

import torch
from torch import nn

from robbench.defenses.noise_source import NoiseSource
from robbench.models.shortrun import draw_langevin_noise, langevin_infer


class Purify(NoiseSource):
    """Reconstruct x through a generator, then classify the reconstruction.

    Defense-GAN's idea (Samangouei, Kabkab & Chellappa, "Defense-GAN: Protecting Classifiers
    Against Adversarial Attacks Using Generative Models", ICLR 2018): project x onto the range
    of a generator, x' = g(z*), and classify x'. Defense-GAN finds z* by gradient descent on
    |g(z) - x|^2 from random starts; here z* is the short-run Langevin posterior sample z_K(x)
    (Nijkamp et al. 2019; Fischer 2020) of the Short Run classifier's generator, with its
    steps, step size and sigma. The chain is random and differentiable, so robbench attacks
    it with EOT through the unrolled chain (as Athalye et al. 2018 broke Defense-GAN by
    differentiating through the projection).
    """

    def __init__(self, generator: nn.Module, classifier: nn.Module, *, steps: int,
                 step_size: float, sigma: float) -> None:
        super().__init__()
        self.purifier, self.classifier = generator, classifier
        self.steps, self.step_size, self.sigma = steps, step_size, sigma

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """g(z_K(x)), one chain per row."""
        noise = None
        gen = self.generator(x.device)
        if gen is not None:
            noise = draw_langevin_noise(self.steps, x.shape[0], self.purifier.latent, x.device,
                                        gen, x.dtype)
        z = langevin_infer(self.purifier, x, steps=self.steps, step_size=self.step_size,
                           sigma=self.sigma, noise=noise)
        return self.purifier(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.reconstruct(x))
