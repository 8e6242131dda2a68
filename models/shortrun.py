"""The Short Run classifier: a top-down generator, K-step Langevin inference, a head on z_K."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from robbench.models.config import ModelConfig
from robbench.models.layers import activation, activation_derivative, classifier_head


class Generator(nn.Module):
    """g(z): linear, act, ConvT 4x4/2, act, ConvT 4x4/2, sigmoid (the ConvNet's mirror)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.latent = config.latent
        c, w, self.s = config.channels, config.width, config.image_size // 4
        self.w = w
        self.act = config.activation
        self.project = nn.Sequential(
            nn.Linear(config.latent, 2 * w * self.s * self.s), activation(config.activation)
        )
        self.use_dense = True  # False: always the convolutions (e.g. to count their FLOPs)
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1),
            activation(config.activation),
            nn.ConvTranspose2d(w, c, 4, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(z.shape[0], 2 * self.w, self.s, self.s)
        return self.deconv(h)

    def dense_deconvs(self) -> list[torch.Tensor | None]:
        """Each transposed convolution as a dense matrix where its maps are small, else None.

        On an 8x8 image the maps are 2x2 -> 4x4 -> 8x8: the matrices hold at most a few
        hundred thousand entries and one matmul beats the convolution kernel several times on a
        CPU. Built from the weights (differentiably, so BPTT still trains them) once per chain.
        """
        out = []
        size = self.s
        for conv in (self.deconv[0], self.deconv[2]):
            n_in = conv.in_channels * size * size
            n_out = conv.out_channels * (2 * size) ** 2
            if not self.use_dense or n_in * n_out > DENSE_MAX_ENTRIES:
                out.append(None)
            else:
                basis = torch.eye(n_in, device=conv.weight.device, dtype=conv.weight.dtype)
                basis = basis.view(n_in, conv.in_channels, size, size)
                out.append(nn.functional.conv_transpose2d(basis, conv.weight, stride=2,
                                                          padding=1).flatten(1))
            size *= 2
        return out

    def energy_grad(
        self,
        z: torch.Tensor,
        x: torch.Tensor,
        inv_var: float,
        dense: list[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        """grad_z of |z|^2/2 + inv_var |x - g(z)|^2 / 2, i.e. z + J_g(z)^T (g(z) - x) inv_var.

        The vector-Jacobian product is written out with first-order ops (a transposed
        convolution's adjoint is a convolution with the same weights), so differentiating the
        chain needs one ordinary backward instead of autograd's double backward. ``dense`` is
        :meth:`dense_deconvs`, used in place of the transposed convolutions it holds.
        """
        linear, conv1, conv2 = self.project[0], self.deconv[0], self.deconv[2]
        dense1, dense2 = dense if dense is not None else (None, None)
        a0 = linear(z)
        h0 = self.project[1](a0)
        a1 = _deconv(conv1, h0, dense1, self.s)
        a2 = _deconv(conv2, self.deconv[1](a1), dense2, 2 * self.s)
        image = torch.sigmoid(a2)
        d_a2 = (image - x) * inv_var * image * (1 - image)
        d_a1 = _deconv_adjoint(conv2, d_a2, dense2) * activation_derivative(self.act, a1)
        d_h0 = _deconv_adjoint(conv1, d_a1, dense1).flatten(1)
        d_a0 = d_h0 * activation_derivative(self.act, a0)
        return z + d_a0 @ linear.weight


DENSE_MAX_ENTRIES = 2**20


class ThesisGenerator(nn.Module):
    """The thesis's g(z) (nf = width): z as a 1x1 map, ConvT 3x3 (2nf, 3x3), ConvT 4x4/2
    (2nf, 7x7), ConvT 4x4/2 (nf, 14x14), ConvT 4x4/2 (channels, 28x28), sigmoid. For 32x32
    images the first map is 4x4 (ConvT 4x4) and the upsamplings give 8, 16, 32."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        nf, self.latent, self.act = config.width, config.latent, config.activation
        first = config.image_size // 8  # 3 for 28x28 (7 = 2 * 3 + 1), 4 for 32x32
        self.layers = nn.ModuleList([
            nn.ConvTranspose2d(config.latent, 2 * nf, first, 1, 0),
            nn.ConvTranspose2d(2 * nf, 2 * nf, 4, 2, 1,
                               output_padding=1 if config.image_size % 8 else 0),
            nn.ConvTranspose2d(2 * nf, nf, 4, 2, 1),
            nn.ConvTranspose2d(nf, config.channels, 4, 2, 1),
        ])
        self.activation = activation(config.activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = z.view(z.shape[0], self.latent, 1, 1)
        for conv in self.layers[:-1]:
            h = self.activation(conv(h))
        return torch.sigmoid(self.layers[-1](h))

    def dense_deconvs(self) -> None:
        """The maps are too large for dense matrices to pay; kept for ``langevin_infer``."""
        return None

    def energy_grad(
        self, z: torch.Tensor, x: torch.Tensor, inv_var: float, dense: None = None
    ) -> torch.Tensor:
        """grad_z of |z|^2/2 + inv_var |x - g(z)|^2 / 2, written with first-order ops only."""
        h = z.view(z.shape[0], self.latent, 1, 1)
        pre = []
        for conv in self.layers[:-1]:
            pre.append(conv(h))
            h = self.activation(pre[-1])
        image = torch.sigmoid(self.layers[-1](h))
        g = (image - x) * inv_var * image * (1 - image)
        for i in range(len(self.layers) - 1, -1, -1):
            conv = self.layers[i]
            g = nn.functional.conv2d(g, conv.weight, stride=conv.stride, padding=conv.padding)
            if i > 0:
                g = g * activation_derivative(self.act, pre[i - 1])
        return z + g.flatten(1)


def _deconv(
    conv: nn.ConvTranspose2d, h: torch.Tensor, dense: torch.Tensor | None, size: int
) -> torch.Tensor:
    """conv(h) for h of spatial ``size`` (h may be flat), by the dense matrix if given."""
    n = h.shape[0]
    if dense is None:
        return conv(h.reshape(n, conv.in_channels, size, size))
    out = (h.reshape(n, -1) @ dense).view(n, conv.out_channels, 2 * size, 2 * size)
    return out + conv.bias.view(1, -1, 1, 1)


def _deconv_adjoint(
    conv: nn.ConvTranspose2d, g: torch.Tensor, dense: torch.Tensor | None
) -> torch.Tensor:
    """The transpose of ``conv``'s linear map applied to g (a convolution, same weights)."""
    if dense is None:
        return nn.functional.conv2d(g, conv.weight, stride=2, padding=1)
    size = g.shape[-1] // 2
    return (g.flatten(1) @ dense.t()).view(g.shape[0], conv.in_channels, size, size)


def draw_langevin_noise(
    steps: int,
    batch: int,
    latent: int,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Noise for one chain per row: index 0 is z_0, index k >= 1 the kth step's xi."""
    return torch.randn((steps + 1, batch, latent), device=device, generator=generator,
                       dtype=dtype)


def langevin_infer(
    generator: nn.Module,
    x: torch.Tensor,
    *,
    steps: int,
    step_size: float,
    sigma: float,
    noise: torch.Tensor | None = None,
    differentiable: bool | None = None,
    trajectory: list[torch.Tensor] | None = None,
    reference: bool = False,
) -> torch.Tensor:
    """Short-run posterior sample z_K for each row of ``x`` by K Langevin steps from N(0, I).

    z <- z + delta * grad_z log p(x, z) + sqrt(2 delta) * xi, with
    log p(x, z) = -|z|^2/2 - |x - g(z)|^2 / (2 sigma^2).

    ``differentiable`` keeps the graph through every step (``create_graph``) so gradients reach
    x and the generator's parameters (attacks, BPTT). By default it is on whenever grad mode is
    on and either x requires grad or the generator is training.

    The energy gradient comes from the generator's hand-written ``energy_grad`` (fast: the chain
    is a first-order graph) unless ``reference`` asks for plain autograd (``create_graph``),
    the straightforward path every speed-up is checked against.
    """
    latent = _latent_size(generator)
    if noise is None:
        noise = draw_langevin_noise(steps, x.shape[0], latent, x.device, dtype=x.dtype)
    if noise.shape != (steps + 1, x.shape[0], latent):
        raise ValueError(f"noise shape {tuple(noise.shape)} != {(steps + 1, x.shape[0], latent)}")
    if differentiable is None:
        differentiable = torch.is_grad_enabled() and (x.requires_grad or generator.training)
    scale = math.sqrt(2.0 * step_size)
    inv_var = 1.0 / (sigma * sigma)
    z = noise[0].clone()
    if trajectory is not None:
        trajectory.append(z)
    if not reference and hasattr(generator, "energy_grad"):
        with torch.set_grad_enabled(differentiable):
            dense = generator.dense_deconvs()
            for k in range(1, steps + 1):
                grad = generator.energy_grad(z, x, inv_var, dense)
                z = z - step_size * grad + scale * noise[k]
                if trajectory is not None:
                    trajectory.append(z)
        return z
    with torch.enable_grad():
        for k in range(1, steps + 1):
            if not z.requires_grad:
                z = z.requires_grad_(True)
            residual = x - generator(z)
            energy = 0.5 * (z * z).sum() + 0.5 * inv_var * (residual * residual).sum()
            (grad,) = torch.autograd.grad(energy, z, create_graph=differentiable)
            if differentiable:
                z = z - step_size * grad + scale * noise[k]
            else:
                with torch.no_grad():
                    z = z - step_size * grad + scale * noise[k]
            if trajectory is not None:
                trajectory.append(z)
    return z


def _latent_size(generator: nn.Module) -> int:
    if hasattr(generator, "latent"):
        return generator.latent
    first = next(m for m in generator.modules() if isinstance(m, nn.Linear))
    return first.in_features


class ShortRunClassifier(nn.Module):
    """Deep generative classifier: logits = head(z_K(x)); stochastic, a fresh chain per call.

    Set ``noise_seed`` (or use :meth:`fixed_noise`) to make every call draw the same Langevin
    noise, i.e. a deterministic chain, as the fixed-noise attack does. ``reference = True``
    selects the plain autograd chain (the baseline of the performance benchmarks).
    """

    stochastic = True

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = ThesisGenerator(config) if config.arch == "thesis" else Generator(config)
        self.head = classifier_head(
            config.latent, config.head_hidden, config.classes, config.activation
        )
        self.noise_seed: int | None = None
        self.reference = False
        self.n_chains = config.n_chains
        self.combine = config.combine

    def _noise(self, x: torch.Tensor) -> torch.Tensor | None:
        if self.noise_seed is None:
            return None
        gen = torch.Generator(device=x.device).manual_seed(self.noise_seed)
        return draw_langevin_noise(
            self.config.langevin_steps, x.shape[0], self.config.latent, x.device, gen, x.dtype
        )

    def infer(
        self,
        x: torch.Tensor,
        *,
        n_chains: int = 1,
        noise: torch.Tensor | None = None,
        differentiable: bool | None = None,
        trajectory: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """z_K of shape (N, n_chains, d); chains of one input use independent noise."""
        xr = x.repeat_interleave(n_chains, dim=0) if n_chains > 1 else x
        if noise is None:
            noise = self._noise(xr)
        c = self.config
        z = langevin_infer(
            self.generator,
            xr,
            steps=c.langevin_steps,
            step_size=c.step_size,
            sigma=c.sigma,
            noise=noise,
            differentiable=differentiable,
            trajectory=trajectory,
            reference=self.reference,
        )
        return z.view(x.shape[0], n_chains, -1)

    def classify(self, z: torch.Tensor, combine: str | None = None) -> torch.Tensor:
        """Logits from latents of shape (N, chains, d), combining chains as configured."""
        combine = combine or self.combine
        if combine == "mean_z":
            return self.head(z.mean(dim=1))
        logits = self.head(z)
        if combine == "vote":
            votes = nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float().mean(1)
            return torch.log(votes + 1e-6)
        return logits.mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.infer(x, n_chains=self.n_chains))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Synthesised images g(z), z ~ N(0, I).

        z is drawn on ``generator``'s device (a CPU generator gives the same z on every device)
        and then moved to the model's.
        """
        device = next(self.parameters()).device
        where = generator.device if generator is not None else device
        z = torch.randn((n, self.config.latent), device=where, generator=generator)
        return self.generator(z.to(device))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """g(z_K(x)) for one chain per input."""
        return self.generator(self.infer(x)[:, 0])

    @contextmanager
    def fixed_noise(self, seed: int) -> Iterator[ShortRunClassifier]:
        """Within the block every call uses the same Langevin noise (a deterministic chain)."""
        previous, self.noise_seed = self.noise_seed, seed
        try:
            yield self
        finally:
            self.noise_seed = previous


@torch.no_grad()
def generator_samples(model: torch.nn.Module, n: int, seed: int = 0,
                      batch: int = 1000) -> torch.Tensor:
    """``n`` samples g(z), z ~ N(0, I), from one CPU generator seeded ``seed``: the same z on
    any device, in batches so that memory stays flat."""
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([model.sample(min(batch, n - i), generator=gen)
                      for i in range(0, n, batch)])
