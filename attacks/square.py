"""Square Attack (Andriushchenko et al. 2020): score-based random search, no gradients.

"Square Attack: a query-efficient black-box adversarial attack via random search" (ECCV 2020).
Every query is one (EOT) pass of the margin loss with ``with_grad=False``: for a stochastic
model the loss of a candidate is its mean over ``eot`` draws in one batched pass, and that pass
counts as one query.

Each example draws its own square, its corner uniform over all positions {0, ..., w - s} as
Algorithm 2 states. The reference implementations draw the corner from {0, ..., w - s - 1}
(``randint(0, w - s)``), so their squares never reach the last row and column; on 8x8 digits
that freezes 15 of the 64 pixels at their initial stripes, and robbench's Square is about 7
points stronger there (tests/test_cross_check.py measures both placements).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from robbench.attacks.eot import attack_score, eot_loss_grad, margin_loss

Model = Callable[[torch.Tensor], torch.Tensor]

# The paper's schedule for 10,000 queries: p halves after each of these iterations.
P_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def square_p(iteration: int, n_queries: int, p_init: float = 0.8, rescaled: bool = True
             ) -> float:
    """The fraction p of pixels a square covers at ``iteration`` (0-based, after the initial
    query): p_init halved at each of the paper's iterations 10, 50, 200, ..., 8000 of 10,000,
    rescaled to a budget of ``n_queries`` as the reference implementation does (AutoAttack's
    standard version does not rescale: ``rescaled`` False)."""
    it = int(iteration / n_queries * 10000) if rescaled else iteration
    return p_init / 2 ** sum(it > h for h in P_HALVINGS)


def _signs(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.randint(0, 2, shape, device=device).float() * 2 - 1


def _window_masks(n: int, h: int, w: int, s: int, device: torch.device) -> torch.Tensor:
    """(n, 1, h, w) masks of one s x s square per example, placed uniformly at random."""
    top = torch.randint(0, h - s + 1, (n,), device=device)
    left = torch.randint(0, w - s + 1, (n,), device=device)
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    in_rows = (rows[None] >= top[:, None]) & (rows[None] < top[:, None] + s)
    in_cols = (cols[None] >= left[:, None]) & (cols[None] < left[:, None] + s)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]


def _pseudo_gaussian(s: int, device: torch.device) -> torch.Tensor:
    """The paper's L2 update shape for an s x s window (Sec. 3.2, Fig. 2): two halves of
    opposite sign, each a sum of nested rectangles around its centre weighted 1 / (r + 1)^2
    at ring r; unit L2 norm."""

    def rectangles(a: int, b: int) -> torch.Tensor:
        rows = (torch.arange(a, device=device) - (a // 2)).abs()
        cols = (torch.arange(b, device=device) - (b // 2)).abs()
        ring = torch.maximum(rows[:, None], cols[None, :])
        rings = max(a // 2 + 1, b // 2 + 1)
        weights = torch.tensor([sum(1.0 / (r + 1) ** 2 for r in range(k, rings))
                                for k in range(rings)], device=device)
        return weights[ring]

    half = s // 2
    eta = torch.cat([rectangles(half, s), -rectangles(s - half, s)])
    return eta / eta.norm()


def _bumps(m: int, c: int, s: int, device: torch.device) -> torch.Tensor:
    """(m, c, s, s) pseudo-Gaussian updates: per example the shape or its transpose (even odds),
    per example and channel a random sign."""
    eta = _pseudo_gaussian(s, device)
    flip = torch.rand(m, device=device) < 0.5
    shapes = torch.where(flip.view(m, 1, 1), eta.t()[None], eta[None])
    return shapes[:, None] * _signs((m, c, 1, 1), device)


def _single_run(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str,
    n_queries: int,
    p_init: float,
    eot: int,
    stochastic: bool,
    max_batch: int | None,
    rescaled: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One run of ``n_queries`` queries per example (fewer for a deterministic model's examples
    once they are misclassified): (best accepted point by ``attack_score``, its score, its
    fraction of draws misclassified)."""
    n, c, h, w = x.shape
    device = x.device

    def query(candidate: torch.Tensor, labels: torch.Tensor):
        loss, _, fooled = eot_loss_grad(model, candidate, labels, eot=eot, loss_fn=margin_loss,
                                        max_batch=max_batch, with_grad=False)
        return loss, fooled

    if norm == "linf":
        # Vertical stripes of width one at +-eps (per channel and column).
        delta = eps * _signs((n, c, 1, w), device).expand(n, c, h, w)
    else:
        delta = _l2_init(x, eps)
    # The state is the current point; its perturbation x_cur - x is the clipped one.
    x_cur = (x + delta).clamp(0.0, 1.0)
    loss_cur, fooled_cur = query(x_cur, y)
    best, best_score = x_cur.clone(), attack_score(loss_cur, fooled_cur)
    best_fooled = fooled_cur.clone()
    for i in range(n_queries - 1):
        active = torch.ones(n, dtype=torch.bool, device=device)
        if not stochastic:
            active = fooled_cur < 1  # the paper stops an example once it is misclassified
        idx = active.nonzero().flatten()
        if len(idx) == 0:
            break
        p = square_p(i, n_queries, p_init, rescaled)
        side = round(math.sqrt(p * h * w))  # p of the pixels: p * n_features / c
        if norm == "linf":
            x_new = _linf_candidate(x[idx], x_cur[idx], eps, min(max(side, 1), h - 1, w - 1))
        else:
            side = max(side, 3)
            side = min(side + 1 if side % 2 == 0 else side, h, w)
            x_new = _l2_candidate(x[idx], x_cur[idx], eps, side)
        loss, fooled = query(x_new, y[idx])
        accept = loss > loss_cur[idx]
        if not stochastic:
            accept |= fooled >= 1
        keep = idx[accept]
        x_cur[keep] = x_new[accept]
        loss_cur[keep], fooled_cur[keep] = loss[accept], fooled[accept]
        score = attack_score(loss, fooled)
        better = accept & (score > best_score[idx])
        top = idx[better]
        best[top], best_score[top], best_fooled[top] = x_new[better], score[better], fooled[better]
    return best, best_score, best_fooled


def _linf_candidate(
    x: torch.Tensor, x_cur: torch.Tensor, eps: float, s: int, tries: int = 10
) -> torch.Tensor:
    """x_cur with one random s x s window of its perturbation set to +-eps per channel
    (Algorithm 2), clipped to [0, 1]. Signs that leave the window unchanged (the same signs,
    or clipping) are redrawn a few times, as the reference implementation does."""
    m, c, h, w = x.shape
    mask = _window_masks(m, h, w, s, x.device)
    out = x_cur.clone()
    todo = torch.ones(m, dtype=torch.bool, device=x.device)
    for _ in range(tries):
        signs = eps * _signs((m, c, 1, 1), x.device)
        proposal = torch.where(mask, (x + signs).clamp(0.0, 1.0), x_cur)
        out[todo] = proposal[todo]
        todo = (out - x_cur).abs().flatten(1).amax(1) < 1e-7
        if not todo.any():
            break
    return out


def _l2_init(x: torch.Tensor, eps: float) -> torch.Tensor:
    """The paper's L2 initialisation: a grid of pseudo-Gaussian bumps of side h // 5 with
    random signs per channel, rescaled to L2 norm eps."""
    n, c, h, w = x.shape
    s = max(h // 5, 1)
    start = (h - s * 5) // 2 if h >= 5 else 0
    delta = torch.zeros_like(x)
    for top in range(start, h - s + 1, s):
        for left in range(start, w - s + 1, s):
            if s > 1:
                bump = _bumps(n, c, s, x.device)
            else:
                bump = _signs((n, c, 1, 1), x.device)
            delta[:, :, top:top + s, left:left + s] += bump
    return eps * delta / delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)


def _l2_candidate(x: torch.Tensor, x_cur: torch.Tensor, eps: float, s: int) -> torch.Tensor:
    """The paper's L2 update (Algorithm 3) of x_cur: in a random window W1, the current
    perturbation (normalised per channel) plus a pseudo-Gaussian bump of random sign per
    channel, rescaled to hold the mass of W1 and of a second random window W2 (zeroed) plus an
    equal share per channel of the unused budget; the whole perturbation is then rescaled to
    norm eps and the point clipped to [0, 1]."""
    delta = x_cur - x
    m, c, h, w = delta.shape
    win1 = _window_masks(m, h, w, s, delta.device).expand(m, c, h, w)
    win2 = _window_masks(m, h, w, s, delta.device).expand(m, c, h, w)
    in1 = delta[win1].view(m, c, s, s)
    norm1 = in1.flatten(2).norm(dim=2).view(m, c, 1, 1)
    total = delta.flatten(1).norm(dim=1).view(m, 1, 1, 1)
    both = (delta * (win1 | win2)).flatten(2).norm(dim=2).view(m, c, 1, 1)
    update = _bumps(m, c, s, delta.device) + in1 / (norm1 + 1e-12)
    budget = ((eps ** 2 - total ** 2).clamp_min(0.0) / c + both ** 2).sqrt()
    update = update / update.flatten(2).norm(dim=2).view(m, c, 1, 1).clamp_min(1e-12) * budget
    out = delta.masked_fill(win2, 0.0)
    out[win1] = update.flatten()
    norms = out.flatten(1).norm(dim=1).clamp_min(1e-12).view(m, 1, 1, 1)
    return (x + out / norms * eps).clamp(0.0, 1.0)


def square(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    n_queries: int = 1000,
    p_init: float = 0.8,
    eot: int = 1,
    restarts: int = 1,
    stochastic: bool = False,
    max_batch: int | None = None,
    rescaled: bool = True,
) -> torch.Tensor:
    """Square Attack (Andriushchenko et al. 2020), L-inf or L2, from margin-loss queries only.

    ``n_queries`` queries per example and restart, the initial point's included (one query = one
    no-grad EOT pass of ``eot`` draws). A candidate replaces the current point only if its
    (EOT-mean) margin loss is higher. Deterministic model: an example stops once misclassified.
    Stochastic: every example spends the whole budget (no early stop on a lucky draw) and
    returns its best accepted point by ``attack_score``. Restarts: a deterministic model reruns
    the examples not yet fooled, a stochastic one all of them, keeping each example's best.
    ``rescaled``: the p schedule rescaled to ``n_queries`` (see :func:`square_p`).
    """
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm {norm!r} is unknown; allowed: linf, l2")
    n = x.shape[0]
    best = x.clone()
    best_score = torch.full((n,), -float("inf"), device=x.device)
    fooled = torch.zeros(n, device=x.device)
    with torch.no_grad():
        for _ in range(restarts):
            todo = torch.ones(n, dtype=torch.bool, device=x.device) if stochastic else fooled < 1
            idx = todo.nonzero().flatten()
            if len(idx) == 0:
                break
            adv, score, run_fooled = _single_run(model, x[idx], y[idx], eps, norm, n_queries,
                                                 p_init, eot, stochastic, max_batch, rescaled)
            better = score > best_score[idx]
            keep = idx[better]
            best[keep], best_score[keep] = adv[better], score[better]
            fooled[keep] = run_fooled[better]
    return best
