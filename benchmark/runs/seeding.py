"""Per-batch random streams: every batch's draws come from (seed, what, batch start) alone.

An attack's random start, its EOT noise and the scoring passes of a batch therefore do not
depend on which batches ran before it, or on which process ran it: a run's outcomes are the
same in one process and sharded over any number of them, and a resumed run needs no saved
random state.
"""

from __future__ import annotations

import hashlib
import json

import torch

SEEDING = "per-batch"
"""The scheme's name, recorded in every run's config.json and cell."""


def stream_seed(seed: int, *parts: str | int | float) -> int:
    """A 63-bit seed from the run's seed and the parts that name one stream."""
    blob = json.dumps([seed, *parts]).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") >> 1


def seed_stream(seed: int, *parts: str | int | float) -> None:
    """Seed torch's generators (CPU and every GPU) for the stream ``parts`` names."""
    torch.manual_seed(stream_seed(seed, *parts))
