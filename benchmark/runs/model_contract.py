"""robbench's contract with a model, checked on every pass while a run holds it.

A model maps images in [0, 1] of shape (N, C, H, W) to logits: a floating tensor of shape
(N, classes), finite, on a device robbench can read. A model that breaks the contract gets a
one-line error naming it and what it returned, never a number: the argmax of NaN logits is a
class, so a broken model would otherwise score like a guesser. The check is a forward hook,
so it sees every pass (detection, attacks of every backend, scoring) without wrapping the
model and hiding its hooks.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn


class ModelContractError(Exception):
    """A model returned something other than finite (N, classes) floating logits."""


class ModelRaised(Exception):
    """A model's own forward pass raised; the model's exception is the ``__cause__``."""


def contract_violation(logits: Any, rows: int | None, classes: int | None,
                       at_least: int = 2) -> str | None:
    """What is wrong with ``logits`` as the answer to a batch of ``rows`` images (None if
    nothing): the type, dtype, shape, device and finiteness, in that order. ``classes`` None
    accepts any width of at least ``at_least`` (images whose number of classes is not known)."""
    width = str(classes) if classes is not None else f"C >= {at_least}"
    required = f"finite floating logits of shape ({rows if rows is not None else 'N'}, {width})"
    if not isinstance(logits, torch.Tensor):
        return f"returned {type(logits).__name__}, not a tensor; required: {required}"
    if not logits.is_floating_point():
        return f"returned {logits.dtype} logits; required: {required}"
    wrong_rows = rows is not None and logits.dim() >= 1 and logits.shape[0] != rows
    wrong_width = logits.dim() == 2 and (logits.shape[1] != classes if classes is not None
                                         else logits.shape[1] < at_least)
    if logits.dim() != 2 or wrong_rows or wrong_width:
        return f"returned logits of shape {tuple(logits.shape)}; required: {required}"
    if logits.is_meta:
        return f"returned logits on the meta device, which hold no values; required: {required}"
    finite = torch.isfinite(logits).all(dim=1)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        return (f"returned non-finite logits (NaN or inf) for {bad} of {len(finite)} inputs; "
                f"required: {required}")
    return None


class _Width:
    """The number of classes of a run: given, or fixed by the first pass that is checked."""

    def __init__(self, classes: int | None, at_least: int) -> None:
        self.classes, self.at_least = classes, at_least


class ContractCheck:
    """The forward hooks that hold one model to the contract; ``inside`` tells whether an
    exception was raised by the model's own forward pass."""

    def __init__(self, name: str, module: nn.Module, width: _Width) -> None:
        self.name, self.module, self.width = name, module, width
        self.depth = 0
        self.stage = "its first pass"

    def _before(self, _module: nn.Module, args: tuple) -> None:
        self.depth += 1

    def _after(self, _module: nn.Module, args: tuple, output: Any) -> None:
        self.depth -= 1
        if self.depth:  # a nested call of the same module: the outer call is checked
            return
        rows = args[0].shape[0] if args and isinstance(args[0], torch.Tensor) else None
        problem = contract_violation(output, rows, self.width.classes, self.width.at_least)
        if problem is not None:
            raise ModelContractError(f"model {self.name!r} {problem} (during {self.stage}); "
                                     "nothing is scored for it")
        if self.width.classes is None:
            self.width.classes = int(output.shape[1])

    @property
    def inside(self) -> bool:
        return self.depth > 0

    @contextmanager
    def attached(self) -> Iterator[ContractCheck]:
        handles = [self.module.register_forward_pre_hook(self._before),
                   self.module.register_forward_hook(self._after)]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()


class ModelContracts:
    """Every model of a run held to the contract, and the stage each is in, so that a failure
    names the model and where it happened."""

    def __init__(self, modules: Mapping[str, nn.Module], classes: int | None,
                 at_least: int = 2) -> None:
        self.width = _Width(classes, at_least)
        self.checks = {name: ContractCheck(name, module, self.width)
                       for name, module in modules.items()}

    @property
    def classes(self) -> int | None:
        """The run's number of classes: given, or the width of the first checked logits."""
        return self.width.classes

    @contextmanager
    def attached(self) -> Iterator[ModelContracts]:
        with ExitStack() as stack:
            for check in self.checks.values():
                stack.enter_context(check.attached())
            yield self

    @contextmanager
    def stage(self, name: str, stage: str) -> Iterator[None]:
        """Inside the block ``name`` is in ``stage`` (for example "pgd at eps 0.1"); an
        exception its forward pass raises becomes :class:`ModelRaised` naming both."""
        check = self.checks[name]
        check.stage, check.depth = stage, 0
        try:
            yield
        except (ModelContractError, ModelRaised, KeyboardInterrupt):
            raise
        except Exception as exc:
            if not check.inside:
                raise
            check.depth = 0
            raise ModelRaised(f"model {name!r} raised {type(exc).__name__} during {stage}: "
                              f"{_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


_NOT_THE_MODEL = (str(Path(__file__).resolve().parents[1]), str(Path(torch.__file__).parent))


def model_traceback(exc: ModelRaised) -> str:
    """The traceback of the model's own exception, without robbench's and torch's frames."""
    cause = exc.__cause__ or exc
    every = traceback.extract_tb(cause.__traceback__)
    frames = [f for f in every
              if not str(Path(f.filename).resolve()).startswith(_NOT_THE_MODEL)] or every
    return ("Traceback (the model's frames):\n" + "".join(traceback.format_list(frames))
            + "".join(traceback.format_exception_only(type(cause), cause)))
