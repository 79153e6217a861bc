"""Every reference to a document points at one that is in the repository.

The code cites the protocol document by section (``docs/protocol.md §3.1``, ranges such
as ``§7.4-7.6`` and lists such as ``§6 and §7``): each section cited must be a heading of
``docs/protocol.md``, and each document of ``docs/`` named must exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from testkit.processes import REPO

SKIP_DIRS = {".git", ".venv", "node_modules", "build", "alight.egg-info", "__pycache__", ".pytest_cache"}
SUFFIXES = {".py", ".js", ".mjs", ".html", ".md", ".toml", ".ini", ".sh", ".yaml", ".yml"}
PROTOCOL = REPO / "docs" / "protocol.md"

_CITATION = re.compile(r"docs/protocol\.md((?:[\s,]*(?:§|and\s+§|-\s*§?)\d+(?:\.\d+)?)+)")
_SECTION = re.compile(r"(\d+)(?:\.(\d+))?")
_DOC = re.compile(r"(?<![\w/.])docs/([\w-]+\.md)")


def sources() -> Iterator[Path]:
    for path in sorted(REPO.rglob("*")):
        if path.suffix in SUFFIXES and path.is_file() and not SKIP_DIRS & set(path.relative_to(REPO).parts):
            yield path


def headings() -> set[str]:
    """The section numbers of docs/protocol.md: ``"3"`` for ``## 3. ...``, ``"3.1"`` for ``### 3.1 ...``."""
    found = set()
    for line in PROTOCOL.read_text().splitlines():
        match = re.match(r"#{2,3} (\d+(?:\.\d+)?)\.? ", line)
        if match:
            found.add(match[1])
    return found


def cited_sections(text: str) -> Iterator[str]:
    for citation in _CITATION.finditer(text):
        for number in _SECTION.finditer(citation[1]):
            yield number[0]


def test_every_cited_section_of_the_protocol_exists() -> None:
    sections = headings()
    assert {"0.1", "3.1", "7.8"} <= sections  # the parser reads the headings
    missing = []
    for path in sources():
        for section in cited_sections(path.read_text(errors="replace")):
            if section not in sections:
                missing.append(f"{path.relative_to(REPO)}: §{section}")
    assert missing == []


def test_every_document_named_exists() -> None:
    missing = []
    for path in sources():
        for name in _DOC.findall(path.read_text(errors="replace")):
            if not (REPO / "docs" / name).exists():
                missing.append(f"{path.relative_to(REPO)}: docs/{name}")
    assert missing == []


def test_the_old_protocol_notes_are_cited_nowhere() -> None:
    """The protocol notes the code once cited lay outside the repository; it cites docs/protocol.md now."""
    old = "PROTOCOL" + ".md"
    assert [str(path.relative_to(REPO)) for path in sources() if old in path.read_text(errors="replace")] == []


def test_the_citation_parser() -> None:
    text = "(docs/protocol.md §7.4-7.6) docs/protocol.md §6 and §7. docs/protocol.md §1-§3, §5"
    assert list(cited_sections(text)) == ["7.4", "7.6", "6", "7", "1", "3", "5"]
