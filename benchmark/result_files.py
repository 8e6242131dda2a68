"""A benchmark's result files: its record as JSON beside its table as markdown."""

from __future__ import annotations

import json
from pathlib import Path

from robbench.models.checkpoint_io import atomic_write_bytes


def write_result_files(out_dir: str | Path, stem: str, result: dict, markdown: str) -> list[Path]:
    """A benchmark's record as OUT/stem.json and its table as OUT/stem.md, each written whole
    or not at all."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json", out / f"{stem}.md"]
    atomic_write_bytes(paths[0], json.dumps(result, indent=2).encode())
    atomic_write_bytes(paths[1], (markdown.rstrip("\n") + "\n").encode())
    return paths
