"""Crash reports: one log record per process that crashed, with everything needed to
find out why (pid, name, what it runs, the callback and message being handled, the
reason and its traceback), like OTP's proc_lib crash reports.

Records go to the ``alight.actors.crash`` logger at ERROR level; the same fields are
attached to the record (``record.alight``) for structured handlers.

Nothing in reporting may stop an exit from reaching links and monitors (in OTP an
exit signal is sent whatever the report does). Messages and reasons come from
anywhere, clients included: a payload nested 1,000 levels deep, a ten-megabyte
string, an object whose ``__repr__`` raises. So every value is shown with
`safe_repr`, which is bounded in depth and size and never raises, and `report`
itself falls back to a one-line record if building the full one fails.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import reprlib
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._process import Process

log = logging.getLogger("alight.actors.crash")

REPR_LIMIT = 500
"""Characters of a message or reason shown in a crash report (then ``...``)."""

_TRACEBACK_LIMIT = 20_000
"""Characters of a crash report's traceback (a deep recursion's is megabytes)."""


def describe_entry(entry: Any) -> str:
    """A readable name for what a process runs (its function or class)."""
    if entry is None:
        return "?"
    name = getattr(entry, "__qualname__", None) or getattr(entry, "__name__", None)
    module = getattr(entry, "__module__", None)
    if name is None:
        return safe_repr(entry)
    return f"{module}.{name}" if module else str(name)


class _BoundedRepr(reprlib.Repr):
    """`reprlib.Repr` that also bounds dataclasses (our messages: `Message`, `Down`,
    ...) field by field, instead of calling their generated, unbounded ``__repr__``."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 8
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = 20
        self.maxstring = self.maxother = 200
        self.maxlong = 100

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        # In insertion order, as repr() shows a dict (reprlib sorts the keys).
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        items = itertools.islice(x.items(), self.maxdict)
        shown = [f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}" for k, v in items]
        more = ", ..." if len(x) > self.maxdict else ""
        return "{" + ", ".join(shown) + more + "}"

    def repr_instance(self, x: Any, level: int) -> str:
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            if level <= 0:
                return f"{type(x).__name__}(...)"
            fields = ", ".join(
                f"{field.name}={self.repr1(getattr(x, field.name, None), level - 1)}" for field in dataclasses.fields(x)
            )
            return f"{type(x).__name__}({fields})"
        return super().repr_instance(x, level)


_REPR = _BoundedRepr()


def safe_repr(value: Any, limit: int = REPR_LIMIT) -> str:
    """``repr(value)`` for logs and reports: at most ``limit`` characters, containers
    shown to a bounded depth and length, and never an exception (a ``__repr__`` that
    raises shows as ``<T object at 0x..>``)."""
    try:
        text = _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a report must not fail; say what we could not show
        text = f"<{type(value).__name__} object at {id(value):#x} (repr failed)>"
    return text if len(text) <= limit else text[:limit] + "..."


def _traceback(reason: BaseException) -> str:
    try:
        text = "".join(traceback.format_exception(reason)).rstrip()
    except Exception:  # noqa: BLE001 - as in safe_repr
        return f"(the traceback could not be formatted: {type(reason).__name__})"
    if len(text) > _TRACEBACK_LIMIT:
        half = _TRACEBACK_LIMIT // 2
        text = f"{text[:half]}\n... ({len(text) - _TRACEBACK_LIMIT} characters left out) ...\n{text[-half:]}"
    return text


def report(proc: Process, reason: Any) -> None:
    """Log the crash report of ``proc``, which ended with ``reason``. Never raises."""
    pid = proc.pid
    pid_text = f"<{pid.node}.{pid.serial}.0>"
    try:
        _full_report(proc, pid_text, reason)
    except Exception as error:  # noqa: BLE001 - the report is best effort; the exit is not
        log.error("process %s crashed (its crash report failed: %s)", pid_text, type(error).__name__)


def _full_report(proc: Process, pid_text: str, reason: Any) -> None:
    pid = proc.pid
    fields = {
        # The node's name in full, not <0.N.0>: logs of several nodes end up together.
        "pid": pid_text,
        "node": pid.node,
        "name": proc.name,
        "entry": describe_entry(proc.label),
        "callback": proc.callback,
        "message": safe_repr(proc.last_message),
        "reason": safe_repr(reason),
    }
    lines = [
        f"process {fields['pid']} crashed",
        f"  name:     {proc.name or '-'}",
        f"  runs:     {fields['entry']}",
        f"  callback: {proc.callback or '-'}",
        f"  message:  {fields['message']}",
        f"  reason:   {fields['reason']}",
    ]
    if isinstance(reason, BaseException):
        lines.append("  traceback:\n    " + _traceback(reason).replace("\n", "\n    "))
    log.error("\n".join(lines), extra={"alight": fields})
