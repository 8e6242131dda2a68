"""The hidden activations of any base classifier, reached by forward hooks.

SAP and test-time dropout act on a network's hidden activations; hooking the base's activation
modules lets them wrap any classifier without changing its code. The last activation module
before the logits is hooked too (it is hidden: the logits come from a layer after it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

ACTIVATION_TYPES = (nn.ReLU, nn.LeakyReLU, nn.Mish, nn.GELU, nn.ELU, nn.SiLU, nn.Tanh,
                    nn.Softplus)

Transform = Callable[[torch.Tensor], torch.Tensor]


def activation_modules(base: nn.Module) -> list[nn.Module]:
    """The activation modules of ``base`` in definition order; a ValueError if there is none."""
    found = [m for m in base.modules() if isinstance(m, ACTIVATION_TYPES)]
    if not found:
        allowed = ", ".join(t.__name__ for t in ACTIVATION_TYPES)
        raise ValueError(f"base {type(base).__name__} has no activation module to act on; "
                         f"allowed: a network with one of {allowed}")
    return found


def hook_activations(base: nn.Module, transform: Transform) -> list[RemovableHandle]:
    """Replace the output h of every activation module of ``base`` by ``transform(h)``."""
    return [m.register_forward_hook(lambda _m, _inp, out: transform(out))
            for m in activation_modules(base)]
