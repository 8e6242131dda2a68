"""PGD (L-inf and L2) with batched EOT and restarts: the attack engine for stochastic models.

torchattacks' PGD and EOTPGD cannot fold EOT draws into one pass or keep the best restart per
example; this engine does both and otherwise follows torchattacks' PGD step for step (uniform
random start, signed or normalised gradient step, projection, clipping to [0, 1]).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from robbench.attacks.eot import LossFn, attack_score, cross_entropy_loss, eot_loss_grad


def project(x: torch.Tensor, x_adv: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    """Project x_adv onto the eps-ball around x (per-example eps) intersected with [0, 1]."""
    delta = x_adv - x
    e = eps.view(-1, *([1] * (x.dim() - 1)))
    if norm == "linf":
        delta = torch.maximum(torch.minimum(delta, e), -e)
    else:
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view_as(e)
        delta = delta * torch.clamp(e / norms, max=1.0)
    return torch.clamp(x + delta, 0.0, 1.0)


def _random_start(x: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    e = eps.view(-1, *([1] * (x.dim() - 1)))
    if norm == "linf":
        start = x + torch.empty_like(x).uniform_(-1, 1) * e
    else:
        direction = torch.randn_like(x)
        direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view_as(e)
        radius = torch.rand(x.shape[0], device=x.device).view_as(e)
        start = x + direction * radius * e
    return project(x, start, eps, norm)


def pgd(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | torch.Tensor,
    norm: str = "linf",
    steps: int = 40,
    step_size: float | torch.Tensor = 0.01,
    random_start: bool = True,
    eot: int = 1,
    restarts: int = 1,
    loss_fn: LossFn = cross_entropy_loss,
    max_batch: int | None = None,
    stochastic: bool = False,
) -> torch.Tensor:
    """Adversarial examples maximising the EOT loss within the eps-ball (eps may be per example)
    by projected gradient ascent (Madry et al. 2018).

    With several restarts, each example keeps the restart whose final point fools the most
    noise draws (ties broken by the higher loss). With ``stochastic`` (a model that draws fresh
    noise per call) each example keeps instead its best iterate over all restarts and steps by
    ``attack_score``, measured by the EOT pass that takes that iterate's gradient; at the end of
    each restart the best so far and the last iterate are scored again on fresh draws (two
    no-grad passes) and the better is kept, so that the choice is not won by the luckiest
    estimate. Without ``stochastic`` the last iterate is returned, as torchattacks' PGD does.
    """
    eps_t = torch.as_tensor(eps, dtype=x.dtype, device=x.device).expand(x.shape[0])
    alpha = torch.as_tensor(step_size, dtype=x.dtype, device=x.device).expand(x.shape[0])
    alpha = alpha.reshape(-1, *([1] * (x.dim() - 1)))
    best = x.clone()
    best_score = torch.full((x.shape[0],), -float("inf"), device=x.device)

    def keep_better(candidate: torch.Tensor, loss: torch.Tensor, fooled: torch.Tensor) -> None:
        score = attack_score(loss, fooled)
        better = score > best_score
        best[better] = candidate[better]
        best_score.copy_(torch.where(better, score, best_score))

    for _ in range(restarts):
        x_adv = _random_start(x, eps_t, norm) if random_start else x.clone()
        for _ in range(steps):
            loss, grad, fooled = eot_loss_grad(model, x_adv, y, eot=eot, loss_fn=loss_fn,
                                               max_batch=max_batch, direction_only=True)
            if stochastic:
                keep_better(x_adv, loss, fooled)
            if norm == "linf":
                step = grad.sign()
            else:
                g_norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
                step = grad / g_norm.view(-1, *([1] * (x.dim() - 1)))
            x_adv = project(x, x_adv + alpha * step, eps_t, norm)
        if restarts == 1 and not stochastic:
            return x_adv
        if stochastic:
            # The best-so-far's score is the maximum of noisy estimates (biased high): it and
            # the last iterate are compared again on fresh draws, the same for both.
            best_score.copy_(attack_score(*_fresh_score(model, best, y, eot, loss_fn,
                                                        max_batch)))
        loss, _, fooled = eot_loss_grad(model, x_adv, y, eot=eot, loss_fn=loss_fn,
                                        max_batch=max_batch, with_grad=False)
        keep_better(x_adv, loss, fooled)
    return best


def _fresh_score(model, x_adv, y, eot, loss_fn, max_batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean loss, fooled fraction) of ``x_adv`` on one no-grad EOT pass of fresh draws."""
    loss, _, fooled = eot_loss_grad(model, x_adv, y, eot=eot, loss_fn=loss_fn,
                                    max_batch=max_batch, with_grad=False)
    return loss, fooled
