"""Training recipes of both models: the Short Run classifier's three stages (the thesis's) or
joint objective, their losses, optimiser and learning-rate schedule, and the data they see.
``robbench.models.training_loop`` runs them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from robbench.models.config import ModelSpec, TrainConfig
from robbench.models.shortrun import ShortRunClassifier


def make_optimizer(params: Iterable[nn.Parameter], cfg: TrainConfig, lr: float):
    """The configured optimiser: Adam, or Ranger (RAdam + Lookahead, the thesis's choice)."""
    if cfg.optimizer == "ranger":
        try:  # an optional dependency: only the thesis preset trains with Ranger
            from pytorch_optimizer import Ranger
        except ImportError:
            raise ImportError("optimizer 'ranger' needs the optional dependency "
                              "pytorch-optimizer: pip install 'robbench[thesis]'") from None
        return Ranger(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


def annealed_lr_factor(step: int, total: int, anneal_from: float) -> float:
    """1 for the first ``anneal_from`` of ``total`` steps, then a cosine decay to 0."""
    start = anneal_from * total
    if total <= 0 or step < start:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - start) / max(total - start, 1)))


def reconstruction_loss(
    model: ShortRunClassifier, x: torch.Tensor, z: torch.Tensor
) -> torch.Tensor:
    """-log p(x | z) per image, |x - g(z)|^2 / (2 sigma^2), averaged over the batch."""
    residual = x - model.generator(z)
    return residual.pow(2).flatten(1).sum(1).mean() / (2 * model.config.sigma**2)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of ``x`` classified as ``y`` (one pass; fresh noise for a stochastic model)."""
    model.eval()
    device = next(model.parameters()).device
    pred = torch.cat([model(x[i : i + batch_size].to(device)).argmax(1).cpu()
                      for i in range(0, len(x), batch_size)])
    return (pred == y).float().mean().item()


def balanced_labels(labels: int, classes: int) -> int:
    """The labelled images a balanced draw of ``labels`` takes: N rounded down to a multiple of
    the classes (``check_label_budget`` refuses an N below it)."""
    return labels // classes * classes


def subset_sizes(t: TrainConfig, train_size: int, classes: int) -> tuple[int, int]:
    """(labelled images, generative-stage pool) that ``select_subsets`` takes from
    ``train_size`` images of ``classes`` classes: N as ``balanced_labels`` draws it, M capped at
    the training set."""
    labelled = train_size if t.labels is None else balanced_labels(t.labels, classes)
    pool = train_size if t.unlabelled is None else min(max(t.unlabelled, labelled), train_size)
    return labelled, pool


def check_label_budget(labels: int | None, y: torch.Tensor) -> None:
    """Raise ValueError, naming the value, if ``labels`` images cannot be drawn balanced over
    the classes of ``y`` (the labelled set takes N / classes images of every class)."""
    if labels is None:
        return
    counts = torch.bincount(y)
    classes, smallest = len(counts), int(counts.min())
    if labels < classes:
        raise ValueError(f"labels {labels} is fewer than the {classes} classes; the labelled "
                         f"set takes the same number of every class, so at least {classes}")
    if labels // classes > smallest:
        raise ValueError(f"labels {labels} needs {labels // classes} images of every class but "
                         f"the smallest class has {smallest}; allowed: at most "
                         f"{smallest * classes}")


def select_subsets(
    spec: ModelSpec, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(labelled x, labelled y, unlabelled pool) per ``--labels N`` / ``--unlabelled M``.

    The labelled set is N images in all, balanced over classes; the unlabelled pool (seen by the
    generative stage only) is the labelled set plus M - N other training images.
    """
    t = spec.train
    check_label_budget(t.labels, y)
    gen = torch.Generator().manual_seed(t.seed + 1)
    perm = torch.randperm(len(x), generator=gen)
    classes = int(y.max()) + 1
    n_labelled, pool_size = subset_sizes(t, len(x), classes)
    if t.labels is None:
        labelled = perm
    else:
        chosen = [perm[y[perm] == c][: n_labelled // classes] for c in range(classes)]
        labelled = torch.cat(chosen)
    rest = perm[~torch.isin(perm, labelled)]
    pool = torch.cat([labelled, rest[: pool_size - len(labelled)]])
    return x[labelled], y[labelled], x[pool]


@dataclass(frozen=True)
class Stage:
    """One stage of a recipe: the loss, the parameters it trains at which learning rate, on the
    labelled set or the generative pool, for how many passes (``stat`` names its final loss)."""

    name: str
    stat: str
    desc: str
    epochs: float
    lr: float
    params: Callable[[nn.Module], Iterable[nn.Parameter]]
    labelled: bool
    loss_fn: Callable
    train_generator: bool = True


def _every_parameter(model: nn.Module) -> Iterable[nn.Parameter]:
    return model.parameters()


def training_stages(model: nn.Module, t: TrainConfig) -> list[Stage]:
    """The recipe's stages: one for the ConvNet and for the joint objective, else the thesis's
    three (generative; the head on z_K with the generator frozen; BPTT through the chain)."""
    if not isinstance(model, ShortRunClassifier):
        return [Stage("convnet", "loss", "train convnet", t.epochs, t.lr, _every_parameter, True,
                      _convnet_loss)]
    if t.objective == "joint":
        return [Stage("joint", "loss", "joint (CE+recon, BPTT)", t.epochs, t.lr,
                      _every_parameter, True, joint_loss)]
    return [
        Stage("generative", "generative_loss", "stage 1 generative", t.generative_epochs, t.lr,
              lambda m: m.generator.parameters(), False, _generative_loss),
        Stage("discriminative", "discriminative_loss", "stage 2 discriminative",
              t.discriminative_epochs, t.lr, lambda m: m.head.parameters(), True,
              _discriminative_loss, train_generator=False),
        Stage("bptt", "bptt_loss", "stage 3 BPTT", t.bptt_epochs, t.bptt_lr, _every_parameter,
              True, joint_loss),
    ]


def _convnet_loss(model, x, y, cfg):
    logits = model(x)
    return nn.functional.cross_entropy(logits, y), logits


def _generative_loss(model, x, y, cfg):
    z = model.infer(x, differentiable=False)[:, 0]
    return reconstruction_loss(model, x, z), None


def _discriminative_loss(model, x, y, cfg):
    z = model.infer(x, differentiable=False)[:, 0]
    logits = model.head(z)
    return nn.functional.cross_entropy(logits, y), logits


def joint_loss(
    model: ShortRunClassifier, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy through the differentiable chain (BPTT), plus recon_weight x -log p(x|z)."""
    z = model.infer(x, differentiable=True)[:, 0]
    logits = model.head(z)
    loss = nn.functional.cross_entropy(logits, y)
    if cfg.recon_weight:
        loss = loss + cfg.recon_weight * reconstruction_loss(model, x, z)
    return loss, logits
