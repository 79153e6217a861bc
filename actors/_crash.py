"""Crash reports: one log record per process that crashed, with everything needed to
find out why (pid, name, what it runs, the callback and message being handled, the
reason and its traceback), like OTP's proc_lib crash reports.

Records go to the ``alight.actors.crash`` logger at ERROR level; the same fields are
attached to the record (``record.alight``) for structured handlers.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._process import Process

log = logging.getLogger("alight.actors.crash")


def describe_entry(entry: Any) -> str:
    """A readable name for what a process runs (its function or class)."""
    if entry is None:
        return "?"
    name = getattr(entry, "__qualname__", None) or getattr(entry, "__name__", None)
    module = getattr(entry, "__module__", None)
    if name is None:
        return repr(entry)
    return f"{module}.{name}" if module else str(name)


def _short(value: Any, limit: int = 500) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def report(proc: Process, reason: Any) -> None:
    """Log the crash report of ``proc``, which ended with ``reason``."""
    pid = proc.pid
    fields = {
        # The node's name in full, not <0.N.0>: logs of several nodes end up together.
        "pid": f"<{pid.node}.{pid.serial}.0>",
        "node": pid.node,
        "name": proc.name,
        "entry": describe_entry(proc.label),
        "callback": proc.callback,
        "message": _short(proc.last_message),
        "reason": _short(reason),
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
        tb = "".join(traceback.format_exception(reason)).rstrip()
        lines.append("  traceback:\n    " + tb.replace("\n", "\n    "))
    log.error("\n".join(lines), extra={"alight": fields})
