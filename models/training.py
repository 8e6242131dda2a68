"""Training of both models; the Short Run classifier by the thesis's three stages or jointly."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from robbench.models.config import ModelSpec, TrainConfig
from robbench.models.shortrun import ShortRunClassifier


def _batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    for i in range(0, n, batch_size):
        yield perm[i : i + batch_size]


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


def train_model(
    model: nn.Module,
    spec: ModelSpec,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    device: torch.device | str = "cpu",
    quiet: bool = False,
) -> dict[str, float]:
    """Train ``model`` in place as ``spec.train`` says; returns timings and final losses."""
    t = spec.train
    torch.manual_seed(t.seed)
    gen = torch.Generator().manual_seed(t.seed)
    model.to(device).train()
    x_lab, y_lab, x_pool = select_subsets(spec, x, y)
    start = time.perf_counter()
    stats: dict[str, float] = {}
    if not isinstance(model, ShortRunClassifier):
        opt = make_optimizer(model.parameters(), t, t.lr)
        stats["loss"] = _fit(model, opt, x_lab, y_lab, t.epochs, "train convnet", gen, device,
                             quiet, _convnet_loss, t)
    elif t.objective == "joint":
        opt = make_optimizer(model.parameters(), t, t.lr)
        stats["loss"] = _fit(model, opt, x_lab, y_lab, t.epochs, "joint (CE+recon, BPTT)", gen,
                             device, quiet, joint_loss, t)
    else:
        opt = make_optimizer(model.generator.parameters(), t, t.lr)
        stats["generative_loss"] = _fit(model, opt, x_pool, None, t.generative_epochs,
                                        "stage 1 generative", gen, device, quiet,
                                        _generative_loss, t)
        model.generator.requires_grad_(False)
        opt = make_optimizer(model.head.parameters(), t, t.lr)
        stats["discriminative_loss"] = _fit(model, opt, x_lab, y_lab, t.discriminative_epochs,
                                            "stage 2 discriminative", gen, device, quiet,
                                            _discriminative_loss, t)
        model.generator.requires_grad_(True)
        opt = make_optimizer(model.parameters(), t, t.bptt_lr)
        stats["bptt_loss"] = _fit(model, opt, x_lab, y_lab, t.bptt_epochs, "stage 3 BPTT", gen,
                                  device, quiet, joint_loss, t)
    model.eval()
    stats["train_seconds"] = time.perf_counter() - start
    return stats


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


def _fit(model, opt, x, y, epochs, desc, gen, device, quiet, loss_fn, cfg) -> float:
    """Optimise for ``epochs`` passes over ``x``; a fractional count ends within the last pass."""
    last = float("nan")
    per_epoch = math.ceil(len(x) / cfg.batch_size)
    total_steps = round(epochs * per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: annealed_lr_factor(step, total_steps, cfg.anneal_from)
    )
    steps = 0
    bar = tqdm(range(math.ceil(epochs)), desc=desc, disable=quiet or total_steps == 0,
               leave=False)
    for _ in bar:
        total, seen, correct = 0.0, 0, 0
        for idx in _batches(len(x), cfg.batch_size, gen):
            if steps == total_steps:
                break
            xb = x[idx].to(device)
            yb = y[idx].to(device) if y is not None else None
            loss, logits = loss_fn(model, xb, yb, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            steps += 1
            total += loss.item() * len(idx)
            seen += len(idx)
            if logits is not None:
                correct += (logits.argmax(1) == yb).sum().item()
        if seen == 0:  # the step budget ended with the previous pass
            break
        last = total / seen
        postfix = {"loss": f"{last:.4f}"}
        if y is not None:
            postfix["acc"] = f"{correct / seen:.3f}"
        bar.set_postfix(postfix)
    return last
