"""Sharded evaluation against one process: the same cells with world size 1, 2, ... on the CPU.

Each world size runs as its own processes with torchrun's environment (gloo on the CPU). Two
workloads: EOT-PGD in batches of 25, the machine's threads split between the ranks (two
threads in one process against one thread in each of two ranks on a 2-core machine); and
``robbench run --attack pgd --n 400`` exactly as a user types it (default batches), one thread
per rank. Wall time, each rank's CPU time (its balance), and whether every world size wrote the
same outcomes bit for bit are recorded; so is what the committed single-GPU throughput
predicts for 8 GPUs. Writes ``OUT/scaling_cpu.json`` and ``.md``::

    robbench perf scaling                                   # world sizes 1, 2
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robbench.atomic_write import write_result_files
from robbench.perf.timing import hardware
from robbench.records.store import DirectoryStore
from robbench.runs.batches import default_batch_size
from robbench.runs.config import RunConfig
from robbench.runs.named import run_named

CONFIG = RunConfig(models=["convnet", "shortrun"], attacks=["eot-pgd"], eps=[0.1, 0.2], n=200,
                   draws=10, selection_draws=10, params={"steps": 10, "step_size": 0.025,
                                                         "eot": 8})
BATCH = 25
DEFAULT_RUN = RunConfig(models=["convnet", "shortrun"], attacks=["pgd"], n=400)
"""``robbench run --attack pgd --n 400``: every setting its default, the batches included."""
WORKLOADS = {"eot-pgd": (CONFIG, BATCH), "default": (DEFAULT_RUN, None)}
GPU_RECORD = Path("results/perf/NVIDIA-H200.json")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_worker(rank: int, world: int, port: int, threads: int, run_dir: str,
                report: str, workload: str = "eot-pgd") -> None:
    """One rank: torchrun's environment, its share of the threads, the run, its times."""
    config, batch = WORKLOADS[workload]
    if world > 1:
        os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world),
                           "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
                           "MASTER_PORT": str(port)})
    torch.set_num_threads(threads)
    wall, cpu = time.perf_counter(), time.process_time()
    run_named(config, run_dir, batch_size=batch, quiet=True)
    Path(f"{report}.{rank}").write_text(json.dumps(
        {"rank": rank, "wall_s": round(time.perf_counter() - wall, 2),
         "cpu_s": round(time.process_time() - cpu, 2)}))


def _run_world(world: int, threads: int, run_dir: Path, workload: str = "eot-pgd") -> dict:
    ctx = multiprocessing.get_context("spawn")
    port, report = _free_port(), str(run_dir.parent / f"report-{world}")
    start = time.perf_counter()
    procs = [ctx.Process(target=rank_worker,
                         args=(r, world, port, threads, str(run_dir), report, workload))
             for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError(f"world size {world}: a rank failed ({[p.exitcode for p in procs]})")
    ranks = [json.loads(Path(f"{report}.{r}").read_text()) for r in range(world)]
    return {"world_size": world, "threads_per_rank": threads,
            "wall_s": round(time.perf_counter() - start, 2), "ranks": ranks}


def _same_outcomes(a: Path, b: Path) -> bool:
    """Every cell's outcomes bit for bit, and summary.csv but for its seconds column."""
    mine, theirs = DirectoryStore(a), DirectoryStore(b)
    if mine.done() != theirs.done():
        return False
    if not mine.summary().drop(columns="seconds").equals(
            theirs.summary().drop(columns="seconds")):
        return False
    for key in mine.done():
        x, y = mine.outcomes(key), theirs.outcomes(key)
        if sorted(x) != sorted(y) or any(not np.array_equal(x[k], y[k]) for k in x):
            return False
    return True


def gpu_projection(record_path: Path = GPU_RECORD, gpus: int = 8) -> dict | None:
    """What the committed single-GPU EOT-PGD time predicts for ``gpus`` GPUs (linear in the
    number of batches per round), or None without that record."""
    if not record_path.is_file():
        return None
    record = json.loads(record_path.read_text())
    row = record["workloads"][0]
    images = record["settings"]["attack_examples"]
    per_second = images / row["fast"]
    return {"source": str(record_path), "workload": row["workload"], "device": record["device"],
            "one_gpu_images_per_s": round(per_second, 1), "gpus": gpus,
            "predicted_images_per_s": round(gpus * per_second, 1)}


def _measure(workload: str, world_sizes: tuple[int, ...], threads, tmp: Path) -> list[dict]:
    """One row per world size (``threads(world)`` per rank), compared with the first."""
    rows = [_run_world(world, threads(world), tmp / workload / f"w{world}" / "run", workload)
            for world in world_sizes]
    reference = tmp / workload / f"w{world_sizes[0]}" / "run"
    for row in rows:
        row["same_outcomes_as_first"] = _same_outcomes(
            reference, tmp / workload / f"w{row['world_size']}" / "run")
        row["speedup"] = round(rows[0]["wall_s"] / row["wall_s"], 2)
    return rows


def run_scaling(out_dir: str | Path, world_sizes: tuple[int, ...] = (1, 2),
                command: str = "") -> dict:
    """Time the same cells at every world size, for both workloads; write and return the
    record."""
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="robbench-scaling-") as tmp:
        rows = _measure("eot-pgd", world_sizes, lambda world: max(1, cores // world), Path(tmp))
        default_rows = _measure("default", world_sizes, lambda world: 1, Path(tmp))
    result = {**hardware("cpu"), "cores": cores, "torch": torch.__version__,
              "config": {"attack": CONFIG.attacks[0], "eps": CONFIG.eps, "n": CONFIG.n,
                         "batch_size": BATCH, **CONFIG.params, "draws": CONFIG.draws},
              "rows": rows,
              "default_run": {"command": "robbench run --attack pgd --n 400",
                              "batch_size": default_batch_size(DEFAULT_RUN.n),
                              "rows": default_rows},
              "gpu_projection": gpu_projection(), "command": command,
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_result_files(out_dir, "scaling_cpu", result, scaling_markdown(result))
    return result


def scaling_markdown(result: dict) -> str:
    c = result["config"]
    lines = [f"Sharded evaluation on the CPU ({result['hardware']}, {result['cores']} cores): "
             f"{c['attack']} (EOT {c['eot']}, {c['steps']} steps) at eps "
             f"{', '.join(map(str, c['eps']))} on both digits models, {c['n']} test images in "
             f"batches of {c['batch_size']}, R = {c['draws']}.", "",
             "| world size | threads per rank | wall (s) | speed-up | CPU s per rank | "
             "same outcomes |", "| ---: | ---: | ---: | ---: | --- | --- |"]
    lines += _rows_markdown(result["rows"])
    default = result.get("default_run")
    if default:
        lines += ["", f"`{default['command']}` as typed (default batches of "
                  f"{default['batch_size']}, PGD-40 at its default eps on both digits models), "
                  "one thread per rank; same outcomes: every cell bit for bit and summary.csv "
                  "but for its seconds:", "",
                  "| world size | threads per rank | wall (s) | speed-up | CPU s per rank | "
                  "same outcomes |", "| ---: | ---: | ---: | ---: | --- | --- |",
                  *_rows_markdown(default["rows"])]
    gpu = result.get("gpu_projection")
    if gpu:
        lines += ["", f"One {gpu['device']} ran {gpu['workload']} at "
                  f"{gpu['one_gpu_images_per_s']:,.0f} images/s (`{gpu['source']}`); sharding "
                  f"predicts {gpu['predicted_images_per_s']:,.0f} images/s on {gpu['gpus']} "
                  "GPUs, if every round has a batch for every rank."]
    return "\n".join(lines) + "\n"


def _rows_markdown(rows: list[dict]) -> list[str]:
    out = []
    for row in rows:
        cpu = ", ".join(f"{r['cpu_s']:.0f}" for r in row["ranks"])
        out.append(f"| {row['world_size']} | {row['threads_per_rank']} | {row['wall_s']:.1f} "
                   f"| {row['speedup']:.2f}x | {cpu} | "
                   f"{'yes' if row['same_outcomes_as_first'] else 'NO'} |")
    return out
