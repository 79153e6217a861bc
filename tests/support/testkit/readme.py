"""The fenced code blocks of the project's Markdown (README.md, docs/*.md), as the
README-blocks test and the tests that perform a block read them.

A block is what a reader copies: its text with the fence's indentation removed (blocks
inside list items are indented), its info string's language, and where it is, so a
failure names the line to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from testkit.processes import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"

_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: ``path`` (relative to the repository), the ``line`` of its
    opening fence, its ``lang`` (``""`` when the fence names none) and its ``text``."""

    path: str
    line: int
    lang: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} ({self.lang or 'no language'})"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, in order; an unclosed fence is an error."""
    found: list[Block] = []
    lines = path.read_text().splitlines()
    name = str(path.relative_to(REPO))
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent = len(opening["indent"])
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        if j == len(lines):
            raise AssertionError(f"{name}:{i + 1}: a code fence is never closed")
        found.append(Block(name, i + 1, opening["lang"], "\n".join(body) + "\n"))
        i = j + 1
    return found


def project_blocks() -> list[Block]:
    """The blocks of README.md and of every ``docs/*.md``."""
    found = blocks(README)
    for doc in sorted(DOCS.glob("*.md")):
        found.extend(blocks(doc))
    return found


def readme_block(containing: str, path: Path = README) -> Block:
    """The one block of ``path`` (the README by default) whose text contains ``containing``."""
    matching = [block for block in blocks(path) if containing in block.text]
    if len(matching) != 1:
        raise AssertionError(f"{len(matching)} blocks of {path.name} contain {containing!r} (expected one)")
    return matching[0]
