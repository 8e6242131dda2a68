"""Files written whole or not at all: results, records and checkpoints are never half-written."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _file_mode() -> int:
    """The mode ``open`` would give a new file under the process's umask (a temporary file
    is created 0600, which must not stick to results meant to be shared)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode())


def write_result_files(out_dir: str | Path, stem: str, result: dict, markdown: str) -> list[Path]:
    """A benchmark's record as OUT/stem.json and its table as OUT/stem.md, each written whole
    or not at all."""
    out = Path(out_dir)
    paths = [out / f"{stem}.json", out / f"{stem}.md"]
    atomic_write_text(paths[0], json.dumps(result, indent=2))
    atomic_write_text(paths[1], markdown.rstrip("\n") + "\n")
    return paths
