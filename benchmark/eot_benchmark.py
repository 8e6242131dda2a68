"""Batched EOT-PGD (robbench) against torchattacks' EOTPGD (a Python loop over the draws).

Both attack the Short Run classifier with the same M, steps, step size, examples and batches
of images, timed side by side in one process (alternating, best of --repeats). Writes
results/perf/eot_<device>.json and .md.

    python -m robbench.eot_benchmark                       # CPU: digits, n=200, M=8,16
    python -m robbench.eot_benchmark --device cuda --dataset mnist --n 1000 --batch 250 --eot 16
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torchattacks

from robbench.attacks.pgd import pgd
from robbench.cli import resolve_device
from robbench.perf import synchronize
from robbench.result_files import write_result_files


def load_shortrun(
    dataset: str, device: str, untrained: bool, data_dir: str | None = None
) -> torch.nn.Module:
    """The shipped/cached Short Run model, or an untrained one of the dataset's size (timing)."""
    from robbench.models.registry import build_model, default_spec, load_model

    if untrained:
        torch.manual_seed(0)
        return build_model(default_spec("shortrun", dataset).model).to(device).eval()
    return load_model("shortrun", dataset, device=device, quiet=True, data_dir=data_dir)[0].eval()


def images(dataset: str, n: int, size: int, data_dir: str | None) -> tuple[torch.Tensor, ...]:
    """The first n test images, or uniform noise of the model's size if the data is missing."""
    try:
        from robbench.datasets import load_dataset

        data = load_dataset(dataset, data_dir)
        return data.x_test[:n], data.y_test[:n]
    except Exception:  # noqa: BLE001 - timing needs only tensors of the right shape
        torch.manual_seed(0)
        return torch.rand(n, 1, size, size), torch.randint(0, 10, (n,))


def time_attack(fn, x, y, batch: int, device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        fn(x[i : i + batch].to(device), y[i : i + batch].to(device))
    synchronize(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--untrained", action="store_true",
                   help="time an untrained model of the dataset's size (no checkpoint needed)")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--batch", type=int, default=None, help="images per batch (default n)")
    p.add_argument("--eot", default="8,16", help="comma-separated M")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default="results/perf")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_shortrun(args.dataset, device, args.untrained, args.data_dir)
    size = model.config.image_size
    x, y = images(args.dataset, args.n, size, args.data_dir)
    batch = args.batch or len(x)
    alpha = 2.5 * args.eps / args.steps
    rows = []
    for m in [int(v) for v in args.eot.split(",")]:
        def ours(xb, yb, m=m):
            return pgd(model, xb, yb, eps=args.eps, steps=args.steps, step_size=alpha, eot=m)

        theirs_attack = torchattacks.EOTPGD(model, eps=args.eps, alpha=alpha, steps=args.steps,
                                            eot_iter=m, random_start=True)

        def theirs(xb, yb, attack=theirs_attack):
            return attack(xb, yb)

        warm_x, warm_y = x[:4], y[:4]
        ours(warm_x.to(device), warm_y.to(device))
        theirs(warm_x.to(device), warm_y.to(device))
        t_ours, t_theirs = [], []
        for _ in range(args.repeats):  # alternate so drifts in machine load hit both
            t_theirs.append(time_attack(theirs, x, y, batch, device))
            t_ours.append(time_attack(ours, x, y, batch, device))
        row = {"eot": m, "torchattacks_eotpgd_s": round(min(t_theirs), 3),
               "robbench_batched_s": round(min(t_ours), 3),
               "speedup": round(min(t_theirs) / min(t_ours), 2),
               "all_torchattacks_s": [round(t, 3) for t in t_theirs],
               "all_robbench_s": [round(t, 3) for t in t_ours]}
        print(f"M={m}: torchattacks EOTPGD {row['torchattacks_eotpgd_s']:.2f} s, robbench "
              f"batched {row['robbench_batched_s']:.2f} s, speedup {row['speedup']:.2f}x",
              flush=True)
        rows.append(row)

    label = "cuda" if device.startswith("cuda") else "cpu"
    hardware = torch.cuda.get_device_name(0) if label == "cuda" else platform.processor() or \
        platform.machine()
    result = {
        "device": label, "hardware": hardware, "torch": torch.__version__,
        "torchattacks": torchattacks.__version__, "threads": torch.get_num_threads(),
        "dataset": args.dataset, "untrained": args.untrained, "n": len(x), "batch": batch,
        "steps": args.steps, "eps": args.eps, "langevin_steps": model.config.langevin_steps,
        "repeats": args.repeats, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python -m robbench.eot_benchmark " + " ".join(argv or []),
        "rows": rows,
    }
    lines = [f"EOT-PGD on the Short Run classifier ({args.dataset}, {label}: {hardware}, "
             f"{result['threads']} threads), n={len(x)}, batch {batch}, {args.steps} steps",
             "", "| M | torchattacks EOTPGD (s) | robbench batched (s) | speedup |",
             "|---:|---:|---:|---:|"]
    lines += [f"| {r['eot']} | {r['torchattacks_eotpgd_s']:.2f} | {r['robbench_batched_s']:.2f} "
              f"| {r['speedup']:.2f}x |" for r in rows]
    paths = write_result_files(args.out, f"eot_{label}", result, "\n".join(lines))
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
