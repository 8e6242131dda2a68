"""torchattacks, the reference some benchmarks time robbench against (an optional extra)."""

from __future__ import annotations

try:
    import torchattacks
except ImportError:  # the benchmarks that need it say so when they run
    torchattacks = None


def require_torchattacks():
    """The torchattacks module, or a one-line error naming the extra that installs it."""
    if torchattacks is None:
        raise ImportError("this benchmark times torchattacks as its reference: pip install "
                          "'robbench[torchattacks]'")
    return torchattacks
