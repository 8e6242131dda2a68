"""Minimal-norm step onto a hyperplane within the image box, the projection FAB takes.

FAB (Croce & Hein 2020, "Minimally distorted adversarial examples with a fast adaptive boundary
attack", Sec. 3.1) needs, for a point t, a hyperplane {z : <w, z> = b} and an Lp norm, the
smallest step d with <w, t + d> = b and 0 <= t + d <= 1. With c = b - <w, t> of either sign,
each coordinate moves along sign(c w_i) by an amount a_i in [0, m_i] (m_i the room the box
leaves), and sum |w_i| a_i = |c|:

* L-inf and L2: a_i = min(lambda k_i, m_i) with k_i = 1 (L-inf) or |w_i| (L2), lambda the
  root of a non-decreasing piecewise-linear function, found exactly from its sorted breakpoints;
* L1: the coordinates with the largest |w_i| fill up first (each unit of L1 buys |w_i|).

When the box cannot reach the hyperplane every coordinate takes its whole room (the closest
the box allows). Computed in float64.
"""

from __future__ import annotations

import torch


def _l1_amounts(gain: torch.Tensor, room: torch.Tensor, need: torch.Tensor) -> torch.Tensor:
    order = gain.argsort(dim=1, descending=True)
    g, m = gain.gather(1, order), room.gather(1, order)
    filled = (g * m).cumsum(1)
    before = filled - g * m
    full = filled <= need[:, None]
    partial = ~full & (before < need[:, None])
    amounts = torch.where(full, m, torch.where(partial, (need[:, None] - before)
                                                / g.clamp_min(1e-300), torch.zeros_like(m)))
    return torch.zeros_like(amounts).scatter(1, order, amounts.clamp(max=m))


def _lp_amounts(gain: torch.Tensor, room: torch.Tensor, need: torch.Tensor, norm: str
                ) -> torch.Tensor:
    rate = gain if norm == "l2" else (gain > 0).double()
    knee = torch.where(rate > 0, room / rate.clamp_min(1e-300), torch.zeros_like(room))
    order = knee.argsort(dim=1)
    k, r, q = knee.gather(1, order), rate.gather(1, order), gain.gather(1, order)
    saturated = (q * room.gather(1, order)).cumsum(1)  # reached by knee j, j included
    slope = (q * r).sum(1, keepdim=True) - (q * r).cumsum(1)  # of the unsaturated rest
    reach = saturated + slope * k  # the function at each knee
    j = (reach < need[:, None]).sum(1, keepdim=True)  # first knee at or past the need
    feasible = j[:, 0] < reach.shape[1]
    jc = j.clamp(max=reach.shape[1] - 1)
    prior = torch.where(j > 0, saturated.gather(1, (jc - 1).clamp_min(0)), 0.0)[:, 0]
    rest = torch.where(j > 0, slope.gather(1, (jc - 1).clamp_min(0)),
                       (q * r).sum(1, keepdim=True))[:, 0]
    lam = (need - prior) / rest.clamp_min(1e-300)
    amounts = torch.minimum(lam[:, None] * rate, room)
    return torch.where(feasible[:, None], amounts, room)


def hyperplane_box_step(t: torch.Tensor, w: torch.Tensor, c: torch.Tensor, norm: str
                        ) -> torch.Tensor:
    """The smallest step d (in ``norm``: linf, l2 or l1) with <w, d> = c and 0 <= t + d <= 1,
    per row of the flat (n, d) ``t`` and ``w`` and the (n,) ``c``; the box's closest point to
    the hyperplane where the box cannot reach it."""
    t64, w64, c64 = t.double(), w.double(), c.double()
    sign = torch.where(c64 >= 0, 1.0, -1.0).to(w64)
    w64 = w64 * sign[:, None]
    need = c64.abs()
    room = torch.where(w64 > 0, 1.0 - t64, torch.where(w64 < 0, t64, 0.0)).clamp_min(0.0)
    gain = w64.abs()
    if norm == "l1":
        amounts = _l1_amounts(gain, room, need)
    elif norm in ("linf", "l2"):
        amounts = _lp_amounts(gain, room, need, norm)
    else:
        raise ValueError(f"norm {norm!r} is unknown; allowed: linf, l2, l1")
    return (w64.sign() * amounts).to(t.dtype)
