"""Gradient-masking diagnostics (Carlini et al. 2019, "On evaluating adversarial robustness").

Each check is a row with its numbers and a status (PASS, FAIL or INFO):

- robust accuracy does not increase with eps (white-box EOT-PGD);
- at very large eps (L-inf 0.5 and 1.0) the attack reaches <= 5%;
- more PGD steps (10 -> 40 -> 200) do not raise robust accuracy beyond the interval of the
  previous rung, and neither do more EOT draws: for a random model the draws climb the ladder
  of ``--eot auto`` (1, 4, 16, ...) until accuracy stops changing, and the row names the M
  chosen;
- square (black box), transfer, latent-pgd and fixed-noise-pgd are not stronger than white-box
  EOT-PGD; one that is becomes the worst case and its row says so;
- the gradient through the model is not vanishing: input-gradient norm and loss increase per
  PGD step, next to the transfer source's; an input gradient counts as zero by the CW margin
  (which does not saturate), so a confident model whose float32 softmax rounds to one is not
  mistaken for a masked one (robbench's attacks take that loss in float64);
- active: the binarization test (Zimmermann et al. 2022, ``robbench.studies.binarization``):
  the attack under test must succeed against modified models of this model's own features for
  which an adversarial example within eps exists by construction.

Step sizes are 2.5 * eps / steps (Madry et al.), so short and long runs cover the same ball.
Works on any model (a ``Target``); the transfer source is another model (by default robbench's
ConvNet of the dataset), and an attack or test a model has no hook for is a row saying why it
was skipped.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from robbench.attacks import budgets
from robbench.attacks.adaptive import latent_missing
from robbench.attacks.eot import eot_loss_grad, margin_loss
from robbench.attacks.registry import attack_params, craft, get_attack
from robbench.attacks.target import Target
from robbench.records.scoring import accuracy_with_interval
from robbench.runs.eot_auto import choose_eot
from robbench.runs.model_contract import ModelContracts
from robbench.studies.binarization import BinarizationConfig, run_binarization_test

COLUMNS = ["check", "attack", "setting", "eps", "accuracy", "ci_low", "ci_high", "reference",
           "status", "detail"]
Result = tuple[float, float, float]


@dataclass
class DiagnoseConfig:
    """Sizes of the diagnostic attacks (the defaults run in a few minutes on 2 CPU cores)."""

    n: int = 100
    eps: tuple[float, ...] = budgets.DIAGNOSTIC_LINF
    large_eps: tuple[float, ...] = budgets.DIAGNOSTIC_LARGE
    eps_ref: float = budgets.DIAGNOSTIC_REFERENCE
    steps: int = 10
    eot: int = 4
    step_ladder: tuple[int, ...] = (10, 40, 200)
    eot_cap: int = 64
    eot_ladder_steps: int = 10
    square_queries: int = 300
    draws: int = 8
    seed: int = 0
    large_eps_max: float = 0.05
    active: bool = True  # run the binarization test
    binarization: BinarizationConfig = field(default_factory=BinarizationConfig)

    @classmethod
    def quick(cls) -> DiagnoseConfig:
        """A tiny configuration for tests (seconds)."""
        return cls(n=16, eps=(0.1, 0.3), steps=3, eot=2, step_ladder=(2, 4), eot_cap=4,
                   eot_ladder_steps=2, square_queries=20, draws=2,
                   binarization=BinarizationConfig(n=4, settings={"eot": 2, "steps": 5},
                                                   feature_draws=2, draws=8))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def row(check: str, attack: str, setting: str, eps: float | None, result: Result | None = None,
        reference: float | None = None, status: str = "INFO", detail: str = "") -> dict:
    acc, low, high = result if result is not None else (None, None, None)
    return {"check": check, "attack": attack, "setting": setting, "eps": eps, "accuracy": acc,
            "ci_low": low, "ci_high": high, "reference": reference, "status": status,
            "detail": detail}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def loss_ascent(target: Target, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
                eot: int) -> tuple[float, float, float]:
    """(median input-gradient L2 norm of the cross-entropy at x, fraction of examples whose
    margin has a zero input gradient, mean loss rise per step) of an L-inf PGD run without
    random start (EOT over ``eot`` draws for a random model)."""
    eot = eot if target.stochastic else 1
    loss0, grad, _ = eot_loss_grad(target, x, y, eot=eot)
    norms = grad.flatten(1).norm(dim=1)
    _, margin_grad, _ = eot_loss_grad(target, x, y, eot=eot, loss_fn=margin_loss)
    margin_norms = margin_grad.flatten(1).norm(dim=1)
    x_adv, alpha = x.clone(), 2.5 * eps / steps
    for _ in range(steps):
        _, g, _ = eot_loss_grad(target, x_adv, y, eot=eot)
        x_adv = torch.clamp(torch.min(torch.max(x_adv + alpha * g.sign(), x - eps), x + eps), 0, 1)
    loss_end, _, _ = eot_loss_grad(target, x_adv, y, eot=eot, with_grad=False)
    rise = (loss_end.mean() - loss0.mean()).item() / steps
    return norms.median().item(), (margin_norms < 1e-10).float().mean().item(), rise


class Checks:
    """The checklist on one model: each method returns its rows."""

    def __init__(self, target: Target, x: torch.Tensor, y: torch.Tensor, source: Target | None,
                 cfg: DiagnoseConfig, device: str, quiet: bool) -> None:
        self.target, self.x, self.y, self.source = target, x, y, source
        self.cfg, self.device, self.quiet = cfg, device, quiet
        self.draws = cfg.draws if target.stochastic else 1
        self.white: dict[str, Result] = {}

    def log(self, msg: str) -> None:
        if not self.quiet:
            print(f"[diagnose {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def attack(self, name: str, eps: float, **settings: Any) -> Result:
        torch.manual_seed(self.cfg.seed)
        companions = {"source": self.source} if self.source is not None else None
        adv = craft(name, self.target, self.x, self.y, [eps],
                    params=attack_params(name, **settings), companions=companions)[eps]
        torch.manual_seed(self.cfg.seed + 1)
        return accuracy_with_interval(self.target.model, adv, self.y, self.draws,
                                      device=self.device)

    def pgd_eot(self, eps: float, steps: int, eot: int) -> Result:
        return self.attack("eot-pgd", eps, steps=steps, step_size=2.5 * eps / steps, eot=eot)

    def clean(self) -> list[dict]:
        torch.manual_seed(self.cfg.seed)
        result = accuracy_with_interval(self.target.model, self.x, self.y, self.draws,
                                        device=self.device)
        self.clean_result = result
        return [row("clean accuracy", "none", f"n={len(self.x)}, R={self.draws} draws", 0.0,
                    result)]

    def eps_sweep(self) -> list[dict]:
        cfg = self.cfg
        self.log(f"accuracy vs eps ({cfg.steps} steps, EOT {cfg.eot})")
        setting = f"{cfg.steps} steps, EOT {cfg.eot}, step 2.5*eps/steps"
        sweep = {e: self.pgd_eot(e, cfg.steps, cfg.eot) for e in sorted({*cfg.eps,
                                                                        *cfg.large_eps})}
        rows, previous, monotone = [], self.clean_result, True
        for e, res in sweep.items():
            ok = res[0] <= previous[2]
            monotone &= ok
            rows.append(row("accuracy vs eps", "eot-pgd", setting, e, res, previous[0],
                            verdict(ok), "<= upper CI of the smaller eps" if ok else
                            "INCREASES with eps: the attack is failing (masking?)"))
            previous = res
        rows.append(row("non-increasing in eps", "eot-pgd", setting, None, None, None,
                        verdict(monotone), f"eps {', '.join(f'{e:g}' for e in sweep)}"))
        for e in cfg.large_eps:
            ok = sweep[e][0] <= cfg.large_eps_max
            rows.append(row(f"large eps reaches <= {cfg.large_eps_max:.0%}", "eot-pgd", setting,
                            e, sweep[e], cfg.large_eps_max, verdict(ok),
                            "" if ok else "an unbounded attack should succeed: gradients "
                            "mislead"))
        self.white[setting] = sweep.get(cfg.eps_ref) or self.pgd_eot(cfg.eps_ref, cfg.steps,
                                                                     cfg.eot)
        return rows

    def ladder_row(self, check: str, what: str, label: str, res: Result,
                   prev: Result | None) -> dict:
        ok = prev is None or res[0] <= prev[2]
        still = prev is not None and res[0] < prev[1]
        return row(check, "eot-pgd", label, self.cfg.eps_ref, res,
                   None if prev is None else prev[0], verdict(ok),
                   f"still decreasing: fewer {what} were not converged" if still else "")

    def convergence(self) -> list[dict]:
        cfg, e0, rows = self.cfg, self.cfg.eps_ref, []
        self.log(f"convergence in steps {cfg.step_ladder}")
        prev = None
        for steps in cfg.step_ladder:
            res = self.pgd_eot(e0, steps, 1)
            self.white[f"{steps} steps, EOT 1"] = res
            rows.append(self.ladder_row("convergence: steps", "steps", f"{steps} steps, EOT 1",
                                        res, prev))
            prev = res
        if not self.target.stochastic:
            return rows
        self.log(f"convergence in EOT draws (ladder up to {cfg.eot_cap})")
        measured: dict[int, Result] = {}

        def measure(m: int) -> tuple[float, float]:
            measured[m] = self.pgd_eot(e0, cfg.eot_ladder_steps, m)
            return measured[m][0], (measured[m][2] - measured[m][1]) / 2

        choice = choose_eot(measure, cap=cfg.eot_cap)
        prev = None
        for m, res in measured.items():
            label = f"{cfg.eot_ladder_steps} steps, EOT {m}"
            self.white[label] = res
            rows.append(self.ladder_row("convergence: EOT draws", "draws", label, res, prev))
            prev = res
        rows.append(row("EOT by convergence", "eot-pgd", f"ladder up to {cfg.eot_cap}", e0,
                        None, None, "INFO", f"chosen M = {choice['chosen']}"
                        + (" (the cap: not converged)" if choice["capped"] else "")))
        return rows

    def others(self) -> list[dict]:
        """Square, transfer, latent-pgd and fixed-noise-pgd against the best white-box row."""
        cfg, e0 = self.cfg, self.cfg.eps_ref
        best_label = min(self.white, key=lambda k: self.white[k][0])
        ref = self.white[best_label]
        self.log("square, transfer, latent-pgd, fixed-noise-pgd")
        short = dict(steps=cfg.steps, step_size=2.5 * e0 / cfg.steps)
        others = {
            "square": (f"{cfg.square_queries} queries",
                       lambda: self.attack("square", e0, n_queries=cfg.square_queries)),
            "transfer": (f"from {self.source.name if self.source else '-'}, {cfg.steps} steps, "
                         f"EOT {cfg.eot}",
                         lambda: self.attack("transfer", e0, source_eot=cfg.eot,
                                             source="source", **short)),
            "latent-pgd": (f"{cfg.steps} steps, EOT {cfg.eot}",
                           lambda: self.attack("latent-pgd", e0, eot=cfg.eot, **short)),
            "fixed-noise-pgd": (f"{cfg.steps} steps",
                                lambda: self.attack("fixed-noise-pgd", e0, **short)),
        }
        rows, worst = [], ("eot-pgd", best_label, ref)
        for name, (label, run) in others.items():
            reason = self.skip_reason(name)
            if reason is not None:
                rows.append(row("not stronger than white-box", name, label, e0, None, ref[0],
                                "INFO", f"skipped: {reason}"))
                continue
            res = run()
            stronger = res[2] < ref[0]  # even its upper CI is below white-box EOT-PGD
            rows.append(row("not stronger than white-box", name, label, e0, res, ref[0],
                            verdict(not stronger),
                            f"STRONGER than EOT-PGD ({best_label}): the worst case uses it"
                            if stronger else f"vs EOT-PGD {best_label}"))
            if res[0] < worst[2][0]:
                worst = (name, label, res)
        rows.append(row("worst case", worst[0], worst[1], e0, worst[2], None, "INFO",
                        "lowest robust accuracy of all attacks at this eps"))
        return rows

    def skip_reason(self, attack: str) -> str | None:
        if attack == "transfer" and self.source is None:
            return "no transfer source model"
        spec = get_attack(attack)
        return spec.unavailable(self.target) if spec.unavailable else None

    def gradients(self) -> list[dict]:
        cfg, e0 = self.cfg, self.cfg.eps_ref
        self.log("gradient norms and loss ascent")
        torch.manual_seed(cfg.seed)
        mine = loss_ascent(self.target, self.x, self.y, e0, cfg.steps, cfg.eot)
        ok = mine[1] < 0.05 and mine[2] > 0
        detail = (f"median abs grad {mine[0]:.3g}; zero grads {mine[1]:.0%}; loss rise/step "
                  f"{mine[2]:.3g}")
        if self.source is not None:
            torch.manual_seed(cfg.seed)
            theirs = loss_ascent(self.source, self.x, self.y, e0, cfg.steps, cfg.eot)
            detail = (f"median abs grad {mine[0]:.3g} ({self.source.name} {theirs[0]:.3g}); "
                      f"zero grads {mine[1]:.0%}; loss rise/step {mine[2]:.3g} "
                      f"({self.source.name} {theirs[2]:.3g})")
        return [row("gradient not vanishing", "eot-pgd", f"{cfg.steps} steps, EOT {cfg.eot}",
                    e0, None, None, verdict(ok), detail)]

    def binarization(self) -> list[dict]:
        """The binarization test at eps_ref (a skipped row without a feature hook)."""
        cfg = self.cfg.binarization
        check = "binarization test (Zimmermann et al. 2022)"
        reason = latent_missing(self.target)
        if reason is not None:
            return [row(check, cfg.attack, "", self.cfg.eps_ref, None, None, "INFO",
                        f"skipped: {reason.replace('latent', 'feature')}")]
        self.log(f"binarization test ({cfg.attack} on {cfg.n} images)")
        result = run_binarization_test(self.target, self.x, self.y, self.cfg.eps_ref,
                                       config=cfg, seed=self.cfg.seed, device=self.device)
        accuracy = None if result.valid == 0 else (1 - result.rate, 1 - result.high,
                                                   1 - result.low)
        return [row(check, cfg.attack, result.setting, result.eps, accuracy,
                    1 - cfg.threshold, result.status, result.summary())]


RERUNNABLE = {"binarization": ("active", "binarization")}
"""Checks that can be rerun alone, and the settings each depends on."""


def config_from_settings(settings: dict[str, Any]) -> DiagnoseConfig:
    """The configuration a report's config.json records (lists as tuples); settings added
    since it was written take their defaults."""
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    fields["binarization"] = BinarizationConfig(**settings.get("binarization", {}))
    return DiagnoseConfig(**fields)


def run_diagnostics(target: Target, x: torch.Tensor, y: torch.Tensor, *,
                    source: Target | None = None, config: DiagnoseConfig | None = None,
                    device: str = "cpu", quiet: bool = False,
                    only: str | None = None) -> pd.DataFrame:
    """Every diagnostic row for ``target`` on the images ``x``, ``y`` (the first ``config.n``),
    or only those of the check ``only`` (one of ``RERUNNABLE``); ``source`` is the transfer
    source (None: that row is skipped)."""
    if only is not None and only not in RERUNNABLE:
        raise ValueError(f"check {only!r} cannot run alone; allowed: {', '.join(RERUNNABLE)}")
    cfg = config or DiagnoseConfig()
    x, y = x[: cfg.n].to(device), y[: cfg.n].to(device)
    target.model.eval()
    checks = Checks(target, x, y, source, cfg, device, quiet)
    contracts = ModelContracts({target.name: target.model}, target.classes)
    with contracts.attached(), contracts.stage(target.name, "the diagnostics"):
        if only == "binarization":
            rows = checks.binarization()
        else:
            rows = checks.clean() + checks.eps_sweep() + checks.convergence() + checks.others()
            rows += checks.gradients() + (checks.binarization() if cfg.active else [])
    return pd.DataFrame(rows, columns=COLUMNS)
