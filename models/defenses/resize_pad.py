"""Random resizing and padding (Xie et al. 2018) in front of a base classifier."""

from __future__ import annotations

import torch
from torch import nn

from robbench.defenses.noise_source import NoiseSource


def resize_pad(x: torch.Tensor, sizes: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor,
               out_size: int) -> torch.Tensor:
    """Each image of ``x`` (N, C, n, n) resized (nearest neighbour) to ``sizes[i]`` pixels a side
    and placed at row ``tops[i]``, column ``lefts[i]`` of a zero canvas ``out_size`` wide.

    Written as one gather, so the gradient reaches every input pixel a canvas pixel copies.
    """
    n, side = x.shape[0], x.shape[-1]
    grid = torch.arange(out_size, device=x.device)
    rows, cols = grid[None] - tops[:, None], grid[None] - lefts[:, None]  # (N, S) local coords
    scale = side / sizes.to(x.dtype)[:, None]
    src_r = ((rows + 0.5) * scale).floor().long().clamp(0, side - 1)
    src_c = ((cols + 0.5) * scale).floor().long().clamp(0, side - 1)
    inside_r = (rows >= 0) & (rows < sizes[:, None])
    inside_c = (cols >= 0) & (cols < sizes[:, None])
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = x.permute(0, 2, 3, 1)[batch, src_r[:, :, None], src_c[:, None, :]]  # (N, S, S, C)
    mask = (inside_r[:, :, None] & inside_c[:, None, :]).unsqueeze(-1)
    return torch.where(mask, out, torch.zeros_like(out)).permute(0, 3, 1, 2)


class RandomResizePad(NoiseSource):
    """Random resizing, then random zero padding, then the base classifier.

    Xie, Wang, Zhang, Ren & Yuille, "Mitigating Adversarial Effects Through Randomization",
    ICLR 2018: an image n pixels wide is resized to r x r with r uniform in [n, out_size), then
    placed at a uniformly random offset on an out_size x out_size zero canvas (the paper: 299
    -> [299, 331) -> 331). Each image draws its own r and offset; the base takes out_size-wide
    inputs and is trained on such inputs. Broken by EOT (Athalye et al. 2018).
    """

    def __init__(self, base: nn.Module, out_size: int) -> None:
        super().__init__()
        self.base, self.out_size = base, int(out_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = x.shape[-1]
        if not side < self.out_size:
            raise ValueError(f"input width {side} must be below out_size {self.out_size}")
        gen, n, dev = self.generator(x.device), x.shape[0], x.device
        sizes = torch.randint(side, self.out_size, (n,), generator=gen, device=dev)
        room = self.out_size - sizes + 1
        tops = (torch.rand(n, generator=gen, device=dev) * room).long()
        lefts = (torch.rand(n, generator=gen, device=dev) * room).long()
        return self.base(resize_pad(x, sizes, tops, lefts, self.out_size))
