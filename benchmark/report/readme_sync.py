"""Keep README blocks equal to the generated files they quote.

A block is ``<!-- BEGIN path -->`` ... ``<!-- END path -->``; its body is the file at ``path``
(relative to the README), with its Markdown headings demoted by three levels so that they nest
under the README's sections. ``robbench readme`` rewrites the blocks, ``--check`` only compares.
"""

from __future__ import annotations

import re
from pathlib import Path

from robbench.atomic_write import atomic_write_bytes

DEMOTE = 3


def demote_headings(text: str, levels: int = DEMOTE) -> str:
    """``# Title`` -> ``#### Title`` outside code fences."""
    out, fenced = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            line = "#" * levels + line
        out.append(line)
    return "".join(out)


BLOCK = re.compile(r"(<!-- BEGIN (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- END (?P=path) -->)", re.S)


def sync_readme(readme: Path, check: bool = False) -> list[str]:
    """Blocks whose body differs from their file; rewrites them unless ``check``."""
    readme = Path(readme)
    text = readme.read_text()
    stale: list[str] = []

    def replace(match: re.Match) -> str:
        source = readme.parent / match["path"]
        if not source.is_file():
            raise FileNotFoundError(f"README quotes {match['path']}, which does not exist")
        if source.suffix in (".png", ".svg"):
            raise ValueError(f"README block {match['path']} must quote a text file")
        body = demote_headings(source.read_text())
        if match["body"] != body:
            stale.append(match["path"])
        return match.group(1) + body + match.group(4)

    new = BLOCK.sub(replace, text)
    if not check and new != text:
        atomic_write_bytes(readme, new.encode())
    return stale


def documentation_pages(root: Path) -> list[Path]:
    """The pages whose blocks quote generated files: README.md, docs/*.md and every README.md
    under results/."""
    root = Path(root)
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md")),
             *sorted((root / "results").glob("**/README.md"))]
    return [p for p in pages if p.is_file()]
