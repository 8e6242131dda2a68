"""``robbench perf SUITE``: one command for every performance benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from robbench.perf.attacks import STEM as ATTACKS_STEM
from robbench.perf.attacks import run_attack_speed
from robbench.perf.chain import PerfSettings, run_perf
from robbench.perf.chain_report import perf_markdown
from robbench.perf.eot import EotBenchmark, run_eot_benchmark
from robbench.perf.memory import run_memory_benchmark
from robbench.perf.scaling import run_scaling

PERF_SUITES = {
    "chain": "the Langevin chain's fast path against plain autograd (EOT-PGD, BPTT epoch, "
             "inference) with an accuracy guard",
    "eot": "batched EOT-PGD against torchattacks' EOTPGD",
    "memory": "peak memory and time of one EOT gradient on a CPU per cap on rows per pass",
    "attacks": "robbench's EOT APGD and AutoAttack-rand against torchattacks' (digits Short "
               "Run classifier, CPU)",
    "scaling": "the same cells sharded over 1, 2, ... processes (torch.distributed, gloo)",
}


def run_suite(name: str, options: dict[str, Any], device: str, command: str) -> str:
    """Run the benchmark ``name`` with the command line's ``options``; its Markdown table."""
    out = Path(options.get("out") or "results/perf")
    if name == "chain":
        full = options.get("sizes") == "full" or (options.get("sizes", "auto") == "auto"
                                                   and device == "cuda")
        settings = PerfSettings() if full else PerfSettings.cpu_smoke()
        return perf_markdown(run_perf(settings, torch.device(device), out,
                                      options.get("data_dir")))
    if name == "eot":
        cfg = EotBenchmark(dataset=options.get("dataset") or "digits",
                           n=options.get("n") or 200, batch=options.get("batch"),
                           eot=tuple(options.get("eot") or (8, 16)),
                           steps=options.get("steps") or 10, repeats=options.get("repeats") or 1,
                           untrained=bool(options.get("untrained")))
        run_eot_benchmark(cfg, device, out, options.get("data_dir"), command)
        return (out / f"eot_{torch.device(device).type}.md").read_text()
    if name == "memory":
        run_memory_benchmark(options.get("dataset") or "mnist", options["cases"], out, command)
        return (out / "eot_memory_cpu.md").read_text()
    if name == "attacks":
        run_attack_speed(out, n=options.get("n") or 100, steps=options.get("steps") or 20,
                         eot=(options.get("eot") or (8,))[0], repeats=options.get("repeats") or 2,
                         command=command)
        return (out / f"{ATTACKS_STEM}.md").read_text()
    if name == "scaling":
        run_scaling(out, tuple(options.get("world_sizes") or (1, 2)), command)
        return (out / "scaling_cpu.md").read_text()
    raise ValueError(f"perf suite {name!r} is unknown; allowed: {', '.join(PERF_SUITES)}")
