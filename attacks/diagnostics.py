"""Gradient-masking diagnostics (Carlini et al. 2019, "On evaluating adversarial robustness").

Each check is a row with its numbers and a status (PASS, FAIL or INFO):

- robust accuracy does not increase with eps (white-box EOT-PGD);
- at very large eps (L-inf 0.5 and 1.0) the attack reaches <= 5%;
- more PGD steps (10 -> 40 -> 200) and more EOT draws (1 -> 8 -> 32) do not raise robust
  accuracy beyond the Wilson interval of the previous rung (a convergence table);
- square (black box), transfer, latent-pgd and fixed-noise-pgd are not stronger than white-box
  EOT-PGD; one that is becomes the worst case and its row says so;
- the gradient through the chain is not vanishing: input-gradient norm and loss increase per
  PGD step, next to the ConvNet's.

Step sizes are 2.5 * eps / steps (Madry et al.), so short and long runs cover the same ball.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from robbench import __version__
from robbench.attacks.eot import eot_loss_grad
from robbench.attacks.registry import attack_params, craft
from robbench.evaluation import accuracy_with_interval
from robbench.models.checkpoint_io import atomic_write_bytes

COLUMNS = ["check", "attack", "setting", "eps", "accuracy", "ci_low", "ci_high", "reference",
           "status", "detail"]


@dataclass
class DiagnoseConfig:
    """Sizes of the diagnostic attacks (the defaults run in a few minutes on 2 CPU cores)."""

    n: int = 100
    eps: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    large_eps: tuple[float, ...] = (0.5, 1.0)
    eps_ref: float = 0.1
    steps: int = 10
    eot: int = 4
    step_ladder: tuple[int, ...] = (10, 40, 200)
    eot_ladder: tuple[int, ...] = (1, 8, 32)
    eot_ladder_steps: int = 10
    square_queries: int = 300
    draws: int = 8
    seed: int = 0
    large_eps_max: float = 0.05

    @classmethod
    def quick(cls) -> DiagnoseConfig:
        """A tiny configuration for tests (seconds)."""
        return cls(n=16, eps=(0.1, 0.3), steps=3, eot=2, step_ladder=(2, 4), eot_ladder=(1, 2),
                   eot_ladder_steps=2, square_queries=20, draws=2)


def _row(check: str, attack: str, setting: str, eps: float | None, result=None,
         reference: float | None = None, status: str = "INFO", detail: str = "") -> dict:
    acc, low, high = result if result is not None else (None, None, None)
    return {"check": check, "attack": attack, "setting": setting, "eps": eps, "accuracy": acc,
            "ci_low": low, "ci_high": high, "reference": reference, "status": status,
            "detail": detail}


def _pass(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def loss_ascent(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
                eot: int) -> tuple[float, float, float]:
    """(median input-gradient L2 norm at x, fraction of zero gradients, mean loss rise per step)
    of an L-inf PGD run without random start (EOT over ``eot`` draws)."""
    eot = eot if getattr(model, "stochastic", False) else 1
    loss0, grad, _ = eot_loss_grad(model, x, y, eot=eot)
    norms = grad.flatten(1).norm(dim=1)
    x_adv, alpha = x.clone(), 2.5 * eps / steps
    for _ in range(steps):
        _, g, _ = eot_loss_grad(model, x_adv, y, eot=eot)
        x_adv = torch.clamp(torch.min(torch.max(x_adv + alpha * g.sign(), x - eps), x + eps), 0, 1)
    loss_end, _, _ = eot_loss_grad(model, x_adv, y, eot=eot, with_grad=False)
    rise = (loss_end.mean() - loss0.mean()).item() / steps
    return norms.median().item(), (norms < 1e-10).float().mean().item(), rise


def run_diagnostics(
    model_name: str = "shortrun",
    dataset: str = "digits",
    *,
    config: DiagnoseConfig | None = None,
    device: str = "cpu",
    data_dir: str | None = None,
    models: dict[str, nn.Module] | None = None,
    quiet: bool = False,
) -> pd.DataFrame:
    """All diagnostic rows for ``model_name`` on the first ``config.n`` test examples."""
    from robbench.datasets import load_dataset
    from robbench.models.config import MODEL_NAMES
    from robbench.models.registry import load_model

    cfg = config or DiagnoseConfig()
    data = load_dataset(dataset, data_dir)
    n = min(cfg.n, len(data.x_test))
    x, y = data.x_test[:n].to(device), data.y_test[:n].to(device)
    models = dict(models or {})
    for name in MODEL_NAMES:
        if name not in models:
            models[name], _ = load_model(name, dataset, device=device, quiet=True,
                                         data_dir=data_dir)
    model = models[model_name].eval()
    other = "convnet" if model_name != "convnet" else "shortrun"
    rows: list[dict] = []

    def log(msg: str) -> None:
        if not quiet:
            print(f"[diagnose {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def attack(name: str, eps: float, **settings: Any) -> tuple[float, float, float]:
        torch.manual_seed(cfg.seed)
        params = attack_params(name, **settings)
        adv = craft(name, model, x, y, [eps], params=params, companions=models)[eps]
        torch.manual_seed(cfg.seed + 1)
        return accuracy_with_interval(model, adv, y, cfg.draws)

    def pgd_eot(eps: float, steps: int, eot: int) -> tuple[float, float, float]:
        return attack("eot-pgd", eps, steps=steps, step_size=2.5 * eps / steps, eot=eot)

    torch.manual_seed(cfg.seed)
    clean = accuracy_with_interval(model, x, y, cfg.draws)
    rows.append(_row("clean accuracy", "none", f"n={n}, R={cfg.draws} draws", 0.0, clean))

    # 1. robust accuracy vs eps, and 2. very large eps
    log(f"accuracy vs eps ({cfg.steps} steps, EOT {cfg.eot})")
    setting = f"{cfg.steps} steps, EOT {cfg.eot}, step 2.5*eps/steps"
    sweep = {e: pgd_eot(e, cfg.steps, cfg.eot) for e in sorted({*cfg.eps, *cfg.large_eps})}
    previous = clean
    monotone = True
    for e, res in sweep.items():
        ok = res[0] <= previous[2]
        monotone &= ok
        rows.append(_row("accuracy vs eps", "eot-pgd", setting, e, res, previous[0],
                         _pass(ok), "<= upper CI of the smaller eps" if ok else
                         "INCREASES with eps: the attack is failing (masking?)"))
        previous = res
    rows.append(_row("non-increasing in eps", "eot-pgd", setting, None, None, None,
                     _pass(monotone), f"eps {', '.join(f'{e:g}' for e in sweep)}"))
    for e in cfg.large_eps:
        res = sweep[e]
        ok = res[0] <= cfg.large_eps_max
        rows.append(_row(f"large eps reaches <= {cfg.large_eps_max:.0%}", "eot-pgd", setting, e,
                         res, cfg.large_eps_max, _pass(ok),
                         "" if ok else "an unbounded attack should succeed: gradients mislead"))

    # 3. convergence in steps and in EOT draws
    e0 = cfg.eps_ref
    white: dict[str, tuple[float, float, float]] = {setting: sweep.get(e0) or pgd_eot(e0, cfg.steps,
                                                                                    cfg.eot)}
    ladders = (
        ("convergence: steps", "steps", [(k, 1) for k in cfg.step_ladder]),
        ("convergence: EOT draws", "draws", [(cfg.eot_ladder_steps, m) for m in cfg.eot_ladder]),
    )
    for check, what, ladder in ladders:
        log(f"{check} {ladder}")
        prev = None
        for steps, m in ladder:
            res = pgd_eot(e0, steps, m)
            label = f"{steps} steps, EOT {m}"
            white[label] = res
            ok = prev is None or res[0] <= prev[2]
            still = prev is not None and res[0] < prev[1]
            rows.append(_row(check, "eot-pgd", label, e0, res,
                             None if prev is None else prev[0], _pass(ok),
                             f"still decreasing: fewer {what} were not converged" if still
                             else ""))
            prev = res

    # 4. other attacks must not beat white-box EOT-PGD
    best_label = min(white, key=lambda k: white[k][0])
    ref = white[best_label]
    log("square, transfer, latent-pgd, fixed-noise-pgd")
    others = {
        ("square", f"{cfg.square_queries} queries"):
            lambda: attack("square", e0, n_queries=cfg.square_queries, seed=cfg.seed),
        ("transfer", f"from {other}, {cfg.steps} steps, EOT {cfg.eot}"):
            lambda: attack("transfer", e0, steps=cfg.steps, step_size=2.5 * e0 / cfg.steps,
                           source_eot=cfg.eot, source=other),
        ("latent-pgd", f"{cfg.steps} steps, EOT {cfg.eot}"):
            lambda: attack("latent-pgd", e0, steps=cfg.steps, step_size=2.5 * e0 / cfg.steps,
                           eot=cfg.eot),
        ("fixed-noise-pgd", f"{cfg.steps} steps"):
            lambda: attack("fixed-noise-pgd", e0, steps=cfg.steps,
                           step_size=2.5 * e0 / cfg.steps),
    }
    worst = ("eot-pgd", best_label, ref)
    for (name, label), run in others.items():
        res = run()
        stronger = res[2] < ref[0]  # even its upper CI is below white-box EOT-PGD
        rows.append(_row("not stronger than white-box", name, label, e0, res, ref[0],
                         _pass(not stronger),
                         f"STRONGER than EOT-PGD ({best_label}): the worst case uses it"
                         if stronger else f"vs EOT-PGD {best_label}"))
        if res[0] < worst[2][0]:
            worst = (name, label, res)
    rows.append(_row("worst case", worst[0], worst[1], e0, worst[2], None, "INFO",
                     "lowest robust accuracy of all attacks at this eps"))

    # 5. gradients through the chain are not vanishing
    log("gradient norms and loss ascent")
    torch.manual_seed(cfg.seed)
    g_model = loss_ascent(model, x, y, e0, cfg.steps, cfg.eot)
    torch.manual_seed(cfg.seed)
    g_other = loss_ascent(models[other].eval(), x, y, e0, cfg.steps, cfg.eot)
    ok = g_model[1] < 0.05 and g_model[2] > 0
    rows.append(_row("gradient not vanishing", "eot-pgd", f"{cfg.steps} steps, EOT {cfg.eot}",
                     e0, None, None, _pass(ok),
                     f"median abs grad {g_model[0]:.3g} ({other} {g_other[0]:.3g}); zero grads "
                     f"{g_model[1]:.0%}; loss rise/step {g_model[2]:.3g} ({other} "
                     f"{g_other[2]:.3g})"))
    return pd.DataFrame(rows, columns=COLUMNS)


def format_table(frame: pd.DataFrame) -> str:
    """Markdown table with accuracies in percent and failures shouted."""
    shown = frame.copy()
    for col in ("accuracy", "ci_low", "ci_high", "reference"):
        shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{100 * v:.1f}%")
    shown["eps"] = shown["eps"].map(lambda v: "" if pd.isna(v) else f"{v:g}")
    shown["status"] = shown["status"].map(lambda s: "**FAIL**" if s == "FAIL" else s)
    return shown.to_markdown(index=False) + "\n"


def write_report(frame: pd.DataFrame, out_dir: str | Path, meta: dict | None = None) -> Path:
    """diagnostics.csv and diagnostics.md in ``out_dir`` (atomic writes)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "diagnostics.csv", frame.to_csv(index=False).encode())
    failed = int((frame["status"] == "FAIL").sum())
    head = "# Gradient-masking diagnostics\n\n"
    if meta:
        head += "".join(f"- {k}: {v}\n" for k, v in meta.items()) + "\n"
    verdict = (f"**{failed} check(s) FAILED** - the robust accuracy of this model is not "
               "trustworthy until they pass.\n" if failed else "All checks passed.\n")
    atomic_write_bytes(out / "diagnostics.md", (head + format_table(frame) + "\n" + verdict)
                       .encode())
    return out


def config_dict(cfg: DiagnoseConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def diagnose_and_report(
    model: str,
    dataset: str,
    out_dir: str | Path,
    *,
    config: DiagnoseConfig | None = None,
    device: str = "cpu",
    data_dir: str | None = None,
    quiet: bool = False,
) -> tuple[pd.DataFrame, float]:
    """Run the checklist on ``model`` and write its report to ``out_dir``; (frame, seconds)."""

    cfg = config or DiagnoseConfig()
    start = time.perf_counter()
    frame = run_diagnostics(model, dataset, config=cfg, device=device, data_dir=data_dir,
                            quiet=quiet)
    seconds = time.perf_counter() - start
    meta = {"model": model, "dataset": dataset, "device": device, "seconds": f"{seconds:.0f}",
            "robbench": __version__,
            "settings": ", ".join(f"{k}={v}" for k, v in config_dict(cfg).items())}
    write_report(frame, out_dir, meta)
    record = {"run": _run_key(model, dataset, cfg), "seconds": round(seconds, 1)}
    atomic_write_bytes(Path(out_dir) / "config.json", json.dumps(record, indent=2).encode())
    return frame, seconds


def _run_key(model: str, dataset: str, cfg: DiagnoseConfig) -> dict[str, Any]:
    settings = json.loads(json.dumps(config_dict(cfg), default=list))
    return {"model": model, "dataset": dataset, "robbench": __version__, "settings": settings}


def current_report_seconds(out_dir: str | Path, model: str, dataset: str,
                           cfg: DiagnoseConfig) -> float | None:
    """The seconds the report in ``out_dir`` took if it is of exactly this model, dataset and
    configuration (so it need not be recomputed), else None."""
    path = Path(out_dir) / "config.json"
    if not ((Path(out_dir) / "diagnostics.csv").is_file() and path.is_file()):
        return None
    record = json.loads(path.read_text())
    return record.get("seconds") if record.get("run") == _run_key(model, dataset, cfg) else None
