"""The context variable through which code running inside a process finds it.

Every process runs in its own asyncio task, and every task runs in its own copy of
the context, so setting the variable at the start of a process's task scopes it to
that process alone. This is the only "current" state the runtime keeps: there is no
module-level node.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._process import Process

current_process: ContextVar[Process] = ContextVar("alight_current_process")
