"""FAB-T (Croce & Hein 2020, "Minimally distorted adversarial examples with a fast adaptive
boundary attack", ICML 2020), targeted, at L-inf, L2 and L1, with batched EOT.

Each step linearises the decision function g = z_t - z_y between the true class y and the
target t at the current point x^(i), and takes the smallest step onto the hyperplane g = 0 within
the box both from x^(i) (delta) and from the original point x (delta_orig)
(:func:`~robbench.attacks.hyperplane_box.hyperplane_box_step`); the next point is the convex
combination (1 - a)(x^(i) + eta delta) + a (x + eta delta_orig), clipped to [0, 1], with
a = min(|delta| / (|delta| + |delta_orig|), alpha_max) (Sec. 3.2). Once a point is adversarial it
is kept if its norm is the smallest so far and the iterate steps back towards x:
x^(i+1) = x + beta (x^(i+1) - x). The paper's eta = 1.05, beta = 0.9, alpha_max = 0.1.

The targeted version (Croce & Hein 2020, "Reliable evaluation...", Sec. 4) runs once for each of
the runner-up classes of the clean logits, here without random restarts (AutoAttack's setting).
For a random model g and its gradient are EOT means over ``eot`` draws and a point counts as
adversarial when more than half of a fresh EOT pass misclassifies it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from robbench.attacks.apgd import best_over_runs, ranked_classes
from robbench.attacks.eot import attack_score, eot_loss_grad, margin_loss, targeted_margin
from robbench.attacks.hyperplane_box import hyperplane_box_step
from robbench.attacks.threat_model import perturbation_norms

Model = Callable[[torch.Tensor], torch.Tensor]


def _fab_run(model: Model, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor, *,
             eps: float, norm: str, steps: int, eot: int, max_batch: int | None,
             eta: float, beta: float, alpha_max: float):
    """One targeted FAB run: (smallest adversarial point found within eps, else x; its score;
    its fooled fraction)."""
    n = x.shape[0]
    shape = (-1, *([1] * (x.dim() - 1)))
    flat = x.flatten(1)
    point = x.clone()
    best = x.clone()
    best_norm = torch.full((n,), float("inf"), device=x.device)
    best_fooled = torch.zeros(n, device=x.device)
    for _ in range(steps):
        g, grad, _ = eot_loss_grad(model, point, y, eot=eot, loss_fn=targeted_margin,
                                   max_batch=max_batch, targets=target)
        w = grad.flatten(1)
        step = hyperplane_box_step(point.flatten(1), w, -g, norm)
        step_orig = hyperplane_box_step(flat, w, -g + (w * (point.flatten(1) - flat)).sum(1),
                                        norm)
        size = perturbation_norms(step, torch.zeros_like(step), norm).clamp_min(1e-8)
        size_orig = perturbation_norms(step_orig, torch.zeros_like(step), norm).clamp_min(1e-8)
        a = (size / (size + size_orig)).clamp(0.0, alpha_max).view(shape)
        point = ((point + eta * step.view_as(x)) * (1 - a)
                 + (x + eta * step_orig.view_as(x)) * a).clamp(0.0, 1.0)
        _, _, fooled = eot_loss_grad(model, point, y, eot=eot, loss_fn=margin_loss,
                                     max_batch=max_batch, with_grad=False)
        adversarial = fooled > 0.5 if eot > 1 else fooled > 0
        norms = perturbation_norms(x, point, norm)
        better = adversarial & (norms < best_norm)
        best[better], best_norm[better], best_fooled[better] = (point[better], norms[better],
                                                                fooled[better])
        point = torch.where(adversarial.view(shape), x + beta * (point - x), point)
    within = best_norm <= eps
    best = torch.where(within.view(shape), best, x)
    fooled = torch.where(within, best_fooled, torch.zeros_like(best_fooled))
    return best, attack_score(-best_norm.clamp(max=1e6), fooled), fooled


def fab_targeted(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 100,
    targets: int = 9,
    eot: int = 1,
    stochastic: bool = False,
    max_batch: int | None = None,
    eta: float = 1.05,
    beta: float = 0.9,
    alpha_max: float = 0.1,
) -> torch.Tensor:
    """FAB-T at ``norm`` (linf, l2, l1): ``steps`` steps towards each of the ``targets``
    runner-up classes in turn; each example returns its smallest adversarial point within
    ``eps`` (scored by ``attack_score``, the norm breaking ties), or x where none was found.
    A deterministic model attacks each target only on the examples not yet broken within eps."""
    if norm not in ("linf", "l2", "l1"):
        raise ValueError(f"norm {norm!r} is unknown; allowed: linf, l2, l1")
    ranked = ranked_classes(model, x, eot, max_batch)
    settings = dict(eps=eps, norm=norm, steps=steps, eot=eot, max_batch=max_batch, eta=eta,
                    beta=beta, alpha_max=alpha_max)

    def run_for(k: int):
        def run(idx: torch.Tensor):
            return _fab_run(model, x[idx], y[idx], ranked[idx, k], **settings)
        return run

    runs = [run_for(k) for k in range(1, min(targets, ranked.shape[1] - 1) + 1)]
    return best_over_runs(x, runs, stochastic)
