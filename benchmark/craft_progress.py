"""Batch-level checkpoints of an attack's crafting, so that an interrupted run loses one batch.

Crafting one model's adversarial examples for one attack on all 10,000 MNIST test images takes
hours on a laptop CPU, longer than a GPU lease's single call. After each batch the adversarial
images of every eps, the seconds the batch took and the random-number state after it are written
atomically to ``<run>/partial/<model>__<attack>__<eps>/batch-<start>.safetensors``. A resumed run
restores the state after the last kept batch, so on the same device it crafts exactly what an
uninterrupted run would have. The directory goes once the cells it feeds are written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from robbench.models.checkpoint_io import atomic_write_bytes


class CraftProgress:
    """The kept batches of one cell group (a model, an attack and the eps crafted together)."""

    def __init__(self, run_dir: Path, group: str, eps: list[float], n: int, batch_size: int):
        self.directory = Path(run_dir) / "partial" / f"{group}__{'_'.join(f'{e:g}' for e in eps)}"
        self.eps, self.n, self.batch_size = list(eps), n, batch_size

    @classmethod
    def find(cls, run_dir: Path, group: str, eps: list[float], all_eps: list[float], n: int,
             batch_size: int) -> CraftProgress:
        """The kept batches of ``group`` whose eps (among ``all_eps``) cover every one of ``eps``
        (a run stopped while writing its cells left some unwritten), else a fresh record."""
        for path in sorted((Path(run_dir) / "partial").glob(f"{group}__*")):
            tags = path.name.rsplit("__", 1)[1].split("_")
            kept = [e for e in all_eps if f"{e:g}" in tags]
            if len(kept) == len(tags) and set(eps) <= set(kept):
                return cls(run_dir, group, kept, n, batch_size)
        return cls(run_dir, group, eps, n, batch_size)

    def _meta(self) -> dict[str, str]:
        return {"n": str(self.n), "batch_size": str(self.batch_size),
                "eps": ",".join(f"{e:g}" for e in self.eps)}

    def resume(self, device: torch.device) -> tuple[dict[float, list[torch.Tensor]], float, int]:
        """The kept batches' adversarial images per eps, their seconds and the next start index;
        restores the random-number state after the last kept batch."""
        adv: dict[float, list[torch.Tensor]] = {e: [] for e in self.eps}
        seconds, start, rng = 0.0, 0, {}
        for path in sorted(self.directory.glob("batch-*.safetensors")):
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if {k: meta.get(k) for k in self._meta()} != self._meta():
                    raise ValueError(
                        f"{self.directory} holds batches of {meta.get('batch_size')} of "
                        f"{meta.get('n')} images; rerun with --batch-size "
                        f"{meta.get('batch_size')} or remove it to start this attack over")
                if int(meta["start"]) != start:
                    raise ValueError(f"{self.directory} lacks the batch at image {start}; "
                                     "remove it to start this attack over")
                for i, e in enumerate(self.eps):
                    adv[e].append(f.get_tensor(f"adv_{i}"))
                rng = {k: f.get_tensor(k) for k in ("rng_cpu", "rng_cuda") if k in f.keys()}
                seconds += float(meta["seconds"])
                start += len(adv[self.eps[0]][-1])
        if "rng_cpu" in rng:
            torch.set_rng_state(rng["rng_cpu"])
        if "rng_cuda" in rng and device.type == "cuda":
            torch.cuda.set_rng_state(rng["rng_cuda"], device)
        return adv, seconds, start

    def keep(self, start: int, adv: dict[float, torch.Tensor], seconds: float,
             device: torch.device) -> None:
        """Write one crafted batch and the random-number state after it."""
        tensors = {f"adv_{i}": adv[e].detach().cpu().contiguous() for i, e in enumerate(self.eps)}
        tensors["rng_cpu"] = torch.get_rng_state()
        if device.type == "cuda":
            tensors["rng_cuda"] = torch.cuda.get_rng_state(device)
        meta = {**self._meta(), "start": str(start), "seconds": repr(seconds),
                "device": str(device)}
        atomic_write_bytes(self.directory / f"batch-{start:07d}.safetensors",
                           save(tensors, metadata=meta))

    def discard(self) -> None:
        """Remove the kept batches (their cells are written)."""
        shutil.rmtree(self.directory, ignore_errors=True)
        discard_all(self.directory.parent.parent, only_if_empty=True)


def discard_all(run_dir: Path, only_if_empty: bool = False) -> None:
    """Remove a run's ``partial/`` directory (all its cells are written)."""
    partial = Path(run_dir) / "partial"
    if partial.is_dir() and not (only_if_empty and any(partial.iterdir())):
        shutil.rmtree(partial)
