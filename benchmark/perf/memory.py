"""Peak memory and time on a CPU of one EOT attack gradient through the Short Run chain, per
row cap.

Each case (images N, draws M, cap) runs in a fresh process: one gradient of the EOT loss, as
an EOT-PGD step takes it, of an untrained Short Run model of the dataset's size on uniform noise
images (memory and time do not depend on the weights). ``auto`` is the engine's default cap
(``robbench.attacks.eot.rows_per_pass``), ``none`` one pass of all N x M rows. Writes
OUT/eot_memory_cpu.json and .md. (GPUs are not capped, and the peak resident memory measured
here is the host's, so the benchmark is CPU only.)

    robbench perf memory                   # mnist size: 100x16 none/auto, 500x16 auto
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from robbench.atomic_write import write_result_files
from robbench.attacks.eot import CPU_PIXEL_ROWS, eot_loss_grad
from robbench.perf.eot import shortrun_for_timing
from robbench.perf.timing import hardware

DEFAULT_CASES = "100x16:none,100x16:auto,500x16:auto"


def parse_cases(text: str) -> list[tuple[int, int, str]]:
    """``NxM:CAP,...`` (CAP = auto, none or a number of rows) as (N, M, CAP) triples."""
    cases = []
    for item in text.split(","):
        try:
            size, cap = item.split(":")
            n, m = (int(v) for v in size.split("x"))
            if n < 1 or m < 1 or not (cap in ("auto", "none") or int(cap) >= 1):
                raise ValueError
        except ValueError:
            raise ValueError(f"case {item!r} is not NxM:CAP with N, M >= 1 and CAP auto, none "
                             "or a number of rows >= 1") from None
        cases.append((n, m, cap))
    return cases


def measure(dataset: str, n: int, eot: int, cap: str) -> dict:
    """One gradient in this process: peak resident memory added by it, seconds, passes."""
    model = shortrun_for_timing(dataset, "cpu", untrained=True)
    size = model.config.image_size
    torch.manual_seed(0)
    x = torch.rand(n, model.config.channels, size, size)
    y = torch.randint(0, 10, (n,))
    max_batch = None if cap == "auto" else n * eot if cap == "none" else int(cap)
    rows: list[int] = []
    model.register_forward_pre_hook(lambda _, args: rows.append(len(args[0])))
    eot_loss_grad(model, x[:2], y[:2], eot=1, direction_only=True)  # warm-up
    rows.clear()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    eot_loss_grad(model, x, y, eot=eot, max_batch=max_batch, direction_only=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"n": n, "eot": eot, "cap": cap, "rows_per_pass": max(rows), "passes": len(rows),
            "peak_added_mib": round((after - before) / 1024, 1), "seconds": round(seconds, 2)}


def run_memory_benchmark(dataset: str, cases: str, out_dir: str | Path,
                         command: str = "") -> dict:
    """Every case in a fresh process; writes and returns the record."""
    rows = []
    for n, m, cap in parse_cases(cases):
        done = subprocess.run(
            [sys.executable, "-m", "robbench.perf.memory", "--dataset", dataset,
             "--case", f"{n}x{m}:{cap}"], capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{n} images x {m} draws, cap {cap}: {row['rows_per_pass']} rows per pass, "
              f"{row['passes']} passes, +{row['peak_added_mib']} MiB peak, {row['seconds']} s",
              flush=True)
        rows.append(row)
    where = hardware("cpu")
    result = {**where, "torch": torch.__version__, "dataset": dataset,
              "cpu_pixel_rows": CPU_PIXEL_ROWS,
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": command, "rows": rows}
    table = pd.DataFrame(rows).rename(columns={
        "n": "images", "eot": "draws", "rows_per_pass": "rows per pass",
        "peak_added_mib": "peak memory added (MiB)"})
    title = (f"One EOT gradient of an untrained Short Run model ({dataset} size, cpu: "
             f"{where['hardware']}, {where['threads']} threads); cap auto = "
             f"{CPU_PIXEL_ROWS:,} pixels per pass on a CPU")
    write_result_files(out_dir, "eot_memory_cpu", result,
                       f"{title}\n\n{table.to_markdown(index=False)}")
    return result


def main(argv: list[str] | None = None) -> int:
    """One case in this process, printed as JSON (the worker of run_memory_benchmark)."""
    p = argparse.ArgumentParser(description="one case of robbench perf memory")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--case", required=True, help="NxM:CAP")
    args = p.parse_args(argv)
    (n, m, cap), = parse_cases(args.case)
    print(json.dumps(measure(args.dataset, n, m, cap)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
