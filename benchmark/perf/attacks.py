"""Speed of robbench's own EOT attacks against torchattacks on the digits Short Run classifier.

Reference = torchattacks' ``APGD(eot_iter=M)`` (one forward and backward pass per draw) and the
``MultiAttack`` of APGD-CE + APGD-DLR that robbench's torchattacks backend runs as
autoattack-rand; new = robbench's ``apgd`` and ``autoattack_rand``, which fold the M draws into
one batched pass. Both sides run in the same process on the same images and seeds, alternately,
and each keeps its best time over the repeats. Each side's robust accuracy over fresh forward
passes is recorded next to its time, so that speed is not bought with strength.

``robbench perf attacks`` writes OUT/attack_speed_cpu.json and .md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from robbench.atomic_write import write_result_files
from robbench.attacks.apgd import apgd
from robbench.attacks.autoattack import autoattack_rand
from robbench.data.datasets import load_digits
from robbench.models.registry import load_zoo_model
from robbench.perf.timing import hardware
from robbench.perf.torchattacks_reference import require_torchattacks

STEM = "attack_speed_cpu"


def _robust_accuracy(model: torch.nn.Module, x_adv: torch.Tensor, y: torch.Tensor,
                     draws: int, seed: int) -> float:
    """Mean over ``draws`` fresh forward passes of the fraction classified correctly."""
    torch.manual_seed(seed)
    with torch.no_grad():
        return sum((model(x_adv).argmax(1) == y).float().mean().item()
                   for _ in range(draws)) / draws


def _timed(fn: Callable[[], torch.Tensor], seed: int) -> tuple[float, torch.Tensor]:
    torch.manual_seed(seed)
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out.detach()


def attack_speed(
    n: int = 100,
    steps: int = 20,
    eot: int = 8,
    repeats: int = 2,
    *,
    eps: float = 0.1,
    draws: int = 10,
    seed: int = 0,
) -> dict:
    """Time torchattacks and robbench side by side on the first ``n`` digits test images
    (L-inf ``eps``, ``steps`` APGD steps, ``eot`` draws per gradient, one restart), best of
    ``repeats`` alternating runs, on the CPU. Returns {settings, rows, ...}; each row holds
    attack, torchattacks_s, robbench_s, speedup, settings and both robust accuracies (mean
    over ``draws`` fresh passes on the examples of each side's first run)."""
    torchattacks = require_torchattacks()
    model = load_zoo_model("shortrun", "digits", device="cpu")[0].eval()
    data = load_digits()
    x, y = data.x_test[:n], data.y_test[:n]

    def ta_apgd(loss: str):
        return torchattacks.APGD(model, norm="Linf", eps=eps, steps=steps, n_restarts=1,
                                 eot_iter=eot, loss=loss, seed=seed)

    workloads: dict[str, tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor]]] = {
        "apgd-ce": (
            lambda: ta_apgd("ce")(x, y),
            lambda: apgd(model, x, y, eps=eps, steps=steps, eot=eot, stochastic=True),
        ),
        "autoattack-rand": (
            lambda: torchattacks.MultiAttack([ta_apgd("ce"), ta_apgd("dlr")])(x, y),
            lambda: autoattack_rand(model, x, y, eps=eps, steps=steps, eot=eot,
                                    stochastic=True),
        ),
    }
    # Warm-up: one step of each side at full size, so that first-call costs (allocating the
    # large EOT batch) stay out of the timings.
    torchattacks.APGD(model, eps=eps, steps=1, eot_iter=eot, seed=seed)(x, y)
    apgd(model, x, y, eps=eps, steps=1, eot=eot, stochastic=True)

    rows = []
    for name, (reference, new) in workloads.items():
        best = {"torchattacks": float("inf"), "robbench": float("inf")}
        first: dict[str, torch.Tensor] = {}
        for r in range(repeats):
            order = [("torchattacks", reference), ("robbench", new)]
            for side, fn in order if r % 2 == 0 else order[::-1]:
                seconds, out = _timed(fn, seed)
                best[side] = min(best[side], seconds)
                first.setdefault(side, out)
        accuracy = {side: _robust_accuracy(model, first[side], y, draws, seed + 1)
                    for side in best}
        rows.append({
            "attack": name,
            "torchattacks_s": round(best["torchattacks"], 3),
            "robbench_s": round(best["robbench"], 3),
            "speedup": round(best["torchattacks"] / best["robbench"], 2),
            "settings": {"n": n, "steps": steps, "eot": eot, "eps": eps, "norm": "linf",
                         "restarts": 1},
            "torchattacks_robust_accuracy": round(accuracy["torchattacks"], 4),
            "robbench_robust_accuracy": round(accuracy["robbench"], 4),
        })
    return {
        "benchmark": "attack_speed",
        "model": "shortrun",
        "dataset": "digits",
        **hardware("cpu"),
        "torch": torch.__version__,
        "torchattacks": torchattacks.__version__,
        "settings": {"n": n, "steps": steps, "eot": eot, "repeats": repeats, "eps": eps,
                     "draws": draws, "seed": seed},
        "rows": rows,
    }


def attack_speed_markdown(result: dict) -> str:
    """The result as a short Markdown table."""
    s = result["settings"]
    lines = [
        f"Digits Short Run classifier, first {s['n']} test images, L∞ ε = {s['eps']}, "
        f"{s['steps']} steps, EOT {s['eot']}; best of {s['repeats']} alternating runs on "
        f"{result['threads']} CPU thread(s); robust accuracy over {s['draws']} fresh passes:",
        "",
        "| attack | torchattacks | robbench | speed-up | accuracy left, torchattacks | "
        "robbench |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['attack']} | {row['torchattacks_s']:.1f} s | {row['robbench_s']:.1f} s | "
            f"{row['speedup']:.2f}× | {100 * row['torchattacks_robust_accuracy']:.1f}% | "
            f"{100 * row['robbench_robust_accuracy']:.1f}% |"
        )
    return "\n".join(lines) + "\n"


def run_attack_speed(out_dir: str | Path, *, n: int = 100, steps: int = 20, eot: int = 8,
                     repeats: int = 2, command: str = "") -> dict:
    """Run the benchmark and write OUT/attack_speed_cpu.json and .md."""
    result = {**attack_speed(n, steps, eot, repeats), "command": command}
    write_result_files(out_dir, STEM, result, attack_speed_markdown(result))
    return result
