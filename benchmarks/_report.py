"""What every benchmark script shares at its edges: the command line (``--json``,
``--quick``), SIGTERM handling, and printing the figures (JSON lines or a rich table)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


@dataclass(frozen=True, slots=True)
class Figure:
    """One line of a report: ``value`` against ``baseline_value`` (measured in the same
    run) as ``ratio``; ``target`` and ``met`` where the issue names a target, ``detail``
    for what a reader may want to check (rounds, CPU use, ...)."""

    bench: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    ratio: float
    target: str = "-"
    met: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def argument_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the options every benchmark takes; add the script's own, then parse."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--json", action="store_true", help="one JSON object per figure and line")
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    return parser


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so that every child the script started is still
    stopped by its ``finally`` blocks."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def emit(figures: Iterable[DataclassInstance], as_json: bool, table: Callable[[], None]) -> None:
    """Print ``figures`` as one JSON object per line, or call ``table`` to show them."""
    if not as_json:
        table()
        return
    for figure in figures:
        print(json.dumps(asdict(figure)), flush=True)
