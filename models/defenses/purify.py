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
    differentiating through the projection). ``infer`` exposes z_K(x), so that robbench's
    latent-pgd can also attack the representation: pull z_K toward another class's latents,
    whose reconstructions the classifier reads as that class.
    """

    def __init__(self, generator: nn.Module, classifier: nn.Module, *, steps: int,
                 step_size: float, sigma: float) -> None:
        super().__init__()
        self.purifier, self.classifier = generator, classifier
        self.steps, self.step_size, self.sigma = steps, step_size, sigma

    def infer(self, x: torch.Tensor, *, n_chains: int = 1) -> torch.Tensor:
        """z_K(x) of shape (N, n_chains, d), chains of one input with independent noise."""
        xr = x.repeat_interleave(n_chains, dim=0) if n_chains > 1 else x
        noise = None
        gen = self.generator(x.device)
        if gen is not None:
            noise = draw_langevin_noise(self.steps, xr.shape[0], self.purifier.latent, x.device,
                                        gen, x.dtype)
        z = langevin_infer(self.purifier, xr, steps=self.steps, step_size=self.step_size,
                           sigma=self.sigma, noise=noise)
        return z.view(x.shape[0], n_chains, -1)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """g(z_K(x)), one chain per row."""
        return self.purifier(self.infer(x)[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.reconstruct(x))
