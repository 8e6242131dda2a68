"""Performance benchmark: the fast path against the plain reference, timed in the same run.

Reference = autograd's double backward through the chain (``model.reference = True``) and
torchattacks' EOTPGD, which loops over the EOT draws; fast = the hand-written energy gradient
(a first-order chain) and robbench's batched EOT. Writes ``<out>/<device>.json`` and ``.md``
and a scaling figure (time and graph memory against K and against EOT samples).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from robbench.atomic_write import write_result_files
from robbench.attacks.pgd import pgd
from robbench.data.datasets import load_dataset
from robbench.models.build import build_model
from robbench.models.config import ModelSpec
from robbench.models.registry import default_spec, load_zoo_model, override_spec
from robbench.models.training import joint_loss
from robbench.perf.chain_report import perf_markdown, plot_scaling
from robbench.perf.timing import hardware, timed
from robbench.perf.torchattacks_reference import require_torchattacks
from robbench.records.scoring import accuracy_with_interval
from robbench.version import __version__


@dataclass
class PerfSettings:
    """Sizes of the timed workloads; the defaults are the issue's GPU sizes (MNIST shape)."""

    dataset: str = "mnist"
    attack_examples: int = 1000
    attack_batch: int = 250
    eot: int = 16
    steps: int = 40
    train_examples: int = 60000
    train_batch: int = 128
    inference_examples: int = 10000
    repeats: int = 1
    scaling_examples: int = 64
    guard_examples: int = 1000
    guard_steps: int = 20

    @classmethod
    def cpu_smoke(cls) -> PerfSettings:
        """Sizes that finish in a few minutes on 2 CPU cores (same code, smaller workloads)."""
        return cls(dataset="digits", attack_examples=397, attack_batch=397, eot=8, steps=5,
                   train_examples=1400, train_batch=64, inference_examples=10000,
                   scaling_examples=64, guard_examples=397, guard_steps=10)


def _model(spec: ModelSpec, device: torch.device, reference: bool) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(spec.model).to(device).eval()
    model.reference = reference
    return model


def _images(spec: ModelSpec, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    c, s = spec.model.channels, spec.model.image_size
    x = torch.rand((n, c, s, s), generator=gen).to(device)
    y = torch.randint(0, spec.model.classes, (n,), generator=gen).to(device)
    return x, y


def eot_pgd_seconds(spec, settings, device, reference: bool) -> float:
    """EOT-M PGD-S (L-inf 0.1) on the attack examples, batch by batch."""
    model = _model(spec, device, reference)
    x, y = _images(spec, settings.attack_examples, device)
    b = settings.attack_batch

    def attack(stop: int = len(x), steps: int = settings.steps) -> None:
        for i in range(0, stop, b):
            if reference:
                require_torchattacks().EOTPGD(model, eps=0.1, alpha=0.01, steps=steps,
                                              eot_iter=settings.eot)(x[i : i + b], y[i : i + b])
            else:
                pgd(model, x[i : i + b], y[i : i + b], eps=0.1, steps=steps,
                    step_size=0.01, eot=settings.eot)

    return timed(attack, device, settings.repeats, warmup=lambda: attack(b, 2))


def training_epoch_seconds(spec, settings, device, reference: bool) -> float:
    """One epoch of BPTT through the K steps (cross-entropy + reconstruction), Adam."""
    model = _model(spec, device, reference).train()
    x, y = _images(spec, settings.train_examples, device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    b = settings.train_batch

    def epoch(stop: int = len(x)) -> None:
        for i in range(0, stop, b):
            loss, _ = joint_loss(model, x[i : i + b], y[i : i + b], spec.train)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return timed(epoch, device, settings.repeats, warmup=lambda: epoch(min(5 * b, len(x))))


def inference_images_per_second(spec, settings, device, reference: bool) -> float:
    model = _model(spec, device, reference)
    x, _ = _images(spec, settings.inference_examples, device)

    def infer() -> None:
        with torch.no_grad():
            for i in range(0, len(x), 5000):
                model(x[i : i + 5000])

    return settings.inference_examples / timed(infer, device, settings.repeats)


def graph_bytes(fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of the tensors autograd saves for backward while ``fn`` builds its graph."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def attack_step_cost(spec, device, n: int, reference: bool) -> dict[str, float]:
    """FLOPs of one Langevin step and one attack step (forward + backward), and graph memory."""
    model = _model(spec, device, reference)
    # Count the convolution form's FLOPs: the dense small-map matrices trade extra
    # multiply-adds for speed, and would overstate the useful work.
    model.generator.use_dense = False
    x, y = _images(spec, n, device)

    def step() -> None:
        xv = x.clone().requires_grad_(True)
        nn.functional.cross_entropy(model(xv), y).backward()

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    attack_flops = counter.get_total_flops()
    memory = graph_bytes(lambda: nn.functional.cross_entropy(
        model(x.clone().requires_grad_(True)), y))
    return {"attack_step_flops": attack_flops,
            "langevin_step_flops": attack_flops / spec.model.langevin_steps,
            "graph_bytes": memory}


def matmul_flops_per_second(device: torch.device, size: int | None = None) -> float:
    """Measured dense FP32 (TF32 where enabled) matmul rate: the hardware yardstick."""
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    seconds = timed(lambda: a @ b, device, 3)
    return 2 * size**3 / seconds


def scaling(spec, settings, device) -> list[dict]:
    """Attack-step time and graph memory against K and against EOT samples (fast path)."""
    rows = []
    for k in (5, 10, 20, 40, 80):
        s = override_spec(spec, langevin_steps=k)
        model = _model(s, device, False)
        x, y = _images(s, settings.scaling_examples, device)
        seconds = timed(lambda m=model, x=x, y=y: pgd(m, x, y, eps=0.1, steps=1), device)
        cost = attack_step_cost(s, device, settings.scaling_examples, False)
        rows.append({"axis": "K", "value": k, "seconds": seconds, "graph_bytes":
                     cost["graph_bytes"]})
    model = _model(spec, device, False)
    x, y = _images(spec, settings.scaling_examples, device)
    for m in (1, 4, 16, 32):
        seconds = timed(lambda m=m: pgd(model, x, y, eps=0.1, steps=1, eot=m), device)
        memory = graph_bytes(lambda m=m: nn.functional.cross_entropy(
            model(x.repeat(m, 1, 1, 1).requires_grad_(True)), y.repeat(m)))
        rows.append({"axis": "EOT", "value": m, "seconds": seconds, "graph_bytes": memory})
    return rows


def accuracy_guard(settings: PerfSettings, device: torch.device,
                   data_dir: str | None = None) -> dict:
    """PGD through the reference chain and through the fast chain on the shipped checkpoint,
    same test images and seeds: the fast path must not change the robust accuracy."""
    model, _ = load_zoo_model("shortrun", settings.dataset, device=device, data_dir=data_dir,
                          quiet=True)
    data = load_dataset(settings.dataset, data_dir)
    x = data.x_test[: settings.guard_examples].to(device)
    y = data.y_test[: settings.guard_examples].to(device)
    n, b, draws, eps = len(x), settings.attack_batch, 4, 0.1
    result: dict = {"examples": n, "steps": settings.guard_steps, "eps": eps, "draws": draws}
    adversarial = {}
    for path in ("reference", "fast"):
        model.reference = path == "reference"
        torch.manual_seed(0)
        x_adv = torch.cat([pgd(model, x[i : i + b], y[i : i + b], eps=eps,
                               steps=settings.guard_steps, step_size=0.01)
                           for i in range(0, n, b)])
        model.reference = False
        torch.manual_seed(1)
        acc, low, high = accuracy_with_interval(model, x_adv, y, draws, device=device)
        result[path] = {"accuracy": acc, "ci_low": low, "ci_high": high}
        adversarial[path] = x_adv
    result["max_abs_difference"] = (adversarial["reference"] - adversarial["fast"]).abs().max(
    ).item()
    ref = result["reference"]
    result["passed"] = ref["ci_low"] <= result["fast"]["accuracy"] <= ref["ci_high"]
    return result


def run_perf(settings: PerfSettings, device: torch.device, out_dir: Path,
             data_dir: str | None = None) -> dict:
    """Time every workload, reference and fast, check their accuracy agrees, and write the
    JSON, Markdown and figure."""
    spec = default_spec("shortrun", settings.dataset)
    guard = accuracy_guard(settings, device, data_dir)  # first: it needs the data and checkpoint
    rows = []
    for workload, fn, unit in (
        (f"EOT-{settings.eot} PGD-{settings.steps}, {settings.attack_examples} images",
         eot_pgd_seconds, "s"),
        (f"BPTT training epoch, {settings.train_examples} images, batch {settings.train_batch}",
         training_epoch_seconds, "s"),
        (f"clean inference, {settings.inference_examples} images, one chain",
         inference_images_per_second, "images/s"),
    ):
        ref = fn(spec, settings, device, True)
        fast = fn(spec, settings, device, False)
        speedup = ref / fast if unit == "s" else fast / ref
        rows.append({"workload": workload, "unit": unit, "reference": ref, "fast": fast,
                     "speedup": speedup})
    cost = attack_step_cost(spec, device, settings.attack_batch, False)
    peak = matmul_flops_per_second(device)
    attack_row = rows[0]
    attack_flops = (cost["attack_step_flops"] / settings.attack_batch * settings.attack_examples
                    * settings.eot * settings.steps)
    result = {
        "device": hardware(device)["label"],
        "torch": torch.__version__,
        "robbench": __version__,
        "settings": asdict(settings),
        "model": spec.model.__dict__ | {"head_hidden": list(spec.model.head_hidden)},
        "workloads": rows,
        "flops": {**cost, "per_image_attack_step": cost["attack_step_flops"]
                  / settings.attack_batch, "matmul_flops_per_second": peak,
                  "attack_achieved_flops_per_second": attack_flops / attack_row["fast"],
                  "attack_fraction_of_matmul_rate": attack_flops / attack_row["fast"] / peak},
        "scaling": scaling(spec, settings, device),
        "accuracy_guard": guard,
    }
    name = result["device"]
    write_result_files(out_dir, name, result, perf_markdown(result))
    plot_scaling(result, out_dir / f"{name}-scaling.png")
    return result


