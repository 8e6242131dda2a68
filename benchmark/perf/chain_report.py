"""The chain benchmark's table (quoted in the README) and scaling figure."""

from __future__ import annotations

from pathlib import Path

from robbench.report.figure_style import plt


def perf_markdown(result: dict) -> str:
    """The side-by-side table quoted in the README."""
    lines = [f"Device: {result['device']} (torch {result['torch']}, robbench "
             f"{result['robbench']}); model: Short Run {result['settings']['dataset']} defaults "
             f"(K = {result['model']['langevin_steps']}, d = {result['model']['latent']}, "
             f"width {result['model']['width']}).", "",
             "| workload | reference | fast | speed-up |", "| --- | ---: | ---: | ---: |"]
    for row in result["workloads"]:
        fmt = "{:,.0f}" if row["unit"] == "images/s" else "{:.2f}"
        unit = " images/s" if row["unit"] == "images/s" else " s"
        lines.append(f"| {row['workload']} | {fmt.format(row['reference'])}{unit} | "
                     f"{fmt.format(row['fast'])}{unit} | {row['speedup']:.2f}× |")
    f = result["flops"]
    lines += ["", f"One attack step (forward and backward through the K-step chain) costs "
              f"{f['per_image_attack_step'] / 1e6:.1f} MFLOP per image "
              f"({f['langevin_step_flops'] / 1e6 / result['settings']['attack_batch']:.2f} MFLOP "
              f"per image per Langevin step). The fast EOT-PGD reaches "
              f"{f['attack_achieved_flops_per_second'] / 1e9:.1f} GFLOP/s, "
              f"{100 * f['attack_fraction_of_matmul_rate']:.1f}% of this device's measured "
              f"FP32 matmul rate ({f['matmul_flops_per_second'] / 1e9:.0f} GFLOP/s)."]
    g = result.get("accuracy_guard")
    if g:
        def acc(r: dict) -> str:
            return (f"{100 * r['accuracy']:.1f}% [{100 * r['ci_low']:.1f}, "
                    f"{100 * r['ci_high']:.1f}]")

        lines += ["", f"Accuracy guard ({'PASS' if g['passed'] else 'FAIL'}): PGD-{g['steps']} "
                  f"at L∞ ε = {g['eps']:g} on the first {g['examples']} test images, shipped "
                  f"checkpoint, same seeds, {g['draws']} draws: reference chain "
                  f"{acc(g['reference'])}, fast chain {acc(g['fast'])}; the adversarial "
                  f"images differ by at most "
                  f"{g['max_abs_difference']:.2g} per pixel."]
    return "\n".join(lines) + "\n"


def plot_scaling(result: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, axis, label in ((axes[0], "K", "Langevin steps K"), (axes[1], "EOT", "EOT samples M")):
        rows = [r for r in result["scaling"] if r["axis"] == axis]
        xs = [r["value"] for r in rows]
        ax.plot(xs, [r["seconds"] for r in rows], "o-", color="tab:blue", label="time")
        ax.set_xlabel(label)
        ax.set_ylabel("seconds per attack step", color="tab:blue")
        ax.set_xscale("log", base=2)
        twin = ax.twinx()
        twin.plot(xs, [r["graph_bytes"] / 2**20 for r in rows], "s--", color="tab:orange",
                  label="graph memory")
        twin.set_ylabel("autograd graph memory (MiB)", color="tab:orange")
        ax.set_title(f"Attack-step cost against {label}")
    fig.suptitle(f"Short Run classifier, {result['device']}, "
                 f"{result['settings']['scaling_examples']} images")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
