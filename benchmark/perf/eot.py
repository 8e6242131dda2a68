"""Batched EOT-PGD (robbench) against torchattacks' EOTPGD (a Python loop over the draws).

Both attack the Short Run classifier with the same M, steps, step size, examples and batches
of images, timed side by side in one process (alternating, best of ``repeats``). Writes
``OUT/eot_<device>.json`` and ``.md``::

    robbench perf eot                                     # CPU: digits, n=200, M=8,16
    robbench perf eot --device cuda --dataset mnist --n 1000 --batch 250 --eot 16
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from robbench.atomic_write import write_result_files
from robbench.attacks.pgd import pgd
from robbench.data.datasets import load_dataset
from robbench.models.build import build_model
from robbench.models.registry import default_spec, load_zoo_model
from robbench.perf.timing import hardware, wall_seconds
from robbench.perf.torchattacks_reference import require_torchattacks
from robbench.version import __version__


@dataclass
class EotBenchmark:
    """Sizes of the EOT comparison."""

    dataset: str = "digits"
    n: int = 200
    batch: int | None = None
    eot: tuple[int, ...] = (8, 16)
    steps: int = 10
    eps: float = 0.1
    repeats: int = 1
    untrained: bool = False


def shortrun_for_timing(dataset: str, device: str, untrained: bool,
                        data_dir: str | None = None) -> torch.nn.Module:
    """The shipped/cached Short Run model, or an untrained one of the dataset's size."""
    if untrained:
        torch.manual_seed(0)
        return build_model(default_spec("shortrun", dataset).model).to(device).eval()
    return load_zoo_model("shortrun", dataset, device=device, data_dir=data_dir)[0].eval()


def timing_images(dataset: str, n: int, size: int, data_dir: str | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n test images, or uniform noise of the model's size if the data is missing."""
    try:
        data = load_dataset(dataset, data_dir)
        return data.x_test[:n], data.y_test[:n]
    except (OSError, RuntimeError):  # timing needs only tensors of the right shape
        torch.manual_seed(0)
        return torch.rand(n, 1, size, size), torch.randint(0, 10, (n,))


def batched(fn, x: torch.Tensor, y: torch.Tensor, batch: int, device: str):
    """A callable running ``fn`` over ``x`` batch by batch on ``device``."""
    def run() -> None:
        for i in range(0, len(x), batch):
            fn(x[i : i + batch].to(device), y[i : i + batch].to(device))
    return run


def run_eot_benchmark(cfg: EotBenchmark, device: str, out_dir: str | Path,
                      data_dir: str | None = None, command: str = "") -> dict:
    """Time both EOT-PGDs for every M; write and return the record."""
    torchattacks = require_torchattacks()
    model = shortrun_for_timing(cfg.dataset, device, cfg.untrained, data_dir)
    x, y = timing_images(cfg.dataset, cfg.n, model.config.image_size, data_dir)
    batch = cfg.batch or len(x)
    alpha = 2.5 * cfg.eps / cfg.steps
    rows = []
    for m in cfg.eot:
        def ours(xb, yb, m=m):
            return pgd(model, xb, yb, eps=cfg.eps, steps=cfg.steps, step_size=alpha, eot=m)

        theirs = torchattacks.EOTPGD(model, eps=cfg.eps, alpha=alpha, steps=cfg.steps,
                                     eot_iter=m, random_start=True)
        for fn in (ours, theirs):  # warm-up
            fn(x[:4].to(device), y[:4].to(device))
        t_ours, t_theirs = [], []
        for _ in range(cfg.repeats):  # alternate so drifts in machine load hit both
            t_theirs.append(wall_seconds(batched(theirs, x, y, batch, device), device))
            t_ours.append(wall_seconds(batched(ours, x, y, batch, device), device))
        row = {"eot": m, "torchattacks_eotpgd_s": round(min(t_theirs), 3),
               "robbench_batched_s": round(min(t_ours), 3),
               "speedup": round(min(t_theirs) / min(t_ours), 2),
               "all_torchattacks_s": [round(t, 3) for t in t_theirs],
               "all_robbench_s": [round(t, 3) for t in t_ours]}
        print(f"M={m}: torchattacks EOTPGD {row['torchattacks_eotpgd_s']:.2f} s, robbench "
              f"batched {row['robbench_batched_s']:.2f} s, speedup {row['speedup']:.2f}x",
              flush=True)
        rows.append(row)
    where = hardware(device)
    result = {**where, "torch": torch.__version__, "torchattacks": torchattacks.__version__,
              "robbench": __version__, **asdict(cfg), "n": len(x), "batch": batch,
              "langevin_steps": model.config.langevin_steps,
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": command, "rows": rows}
    lines = [f"EOT-PGD on the Short Run classifier ({cfg.dataset}, {where['device']}: "
             f"{where['hardware']}, {where['threads']} threads), n={len(x)}, batch {batch}, "
             f"{cfg.steps} steps", "",
             "| M | torchattacks EOTPGD (s) | robbench batched (s) | speedup |",
             "|---:|---:|---:|---:|"]
    lines += [f"| {r['eot']} | {r['torchattacks_eotpgd_s']:.2f} | {r['robbench_batched_s']:.2f} "
              f"| {r['speedup']:.2f}x |" for r in rows]
    write_result_files(out_dir, f"eot_{where['device']}", result, "\n".join(lines))
    return result
