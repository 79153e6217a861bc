"""alight's test kit: what the tests share, on pytest's path (``pythonpath`` in
``pyproject.toml``), so that test modules never import each other and import alight
only as it is installed.

- `UNIT`: one unit of test time; every timeout is a multiple of it, so a slow machine
  scales them all with ``ALIGHT_TEST_UNIT``;
- `Runner`: the type of the ``run`` fixture (``tests/conftest.py``);
- `equals`: a receive predicate for one exact message;
- modules by concept: `testkit.processes` (apps and Node scripts as OS processes),
  `testkit.echo_server`, `testkit.python_client`, `testkit.cluster`,
  `testkit.launcher`, `testkit.raw_ws`, `testkit.browser`, and the apps that tests run
  in processes of their own (`testkit.apps.*`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

UNIT = float(os.environ.get("ALIGHT_TEST_UNIT", "1.0"))
"""One unit of test time, in seconds."""

Runner = Callable[..., Any]


def equals(value: Any) -> Callable[[Any], bool]:
    """A receive predicate for one exact message.

    Not ``value.__eq__``: for a message of another type it returns NotImplemented,
    which is truthy, so it would match anything.
    """
    return lambda message: bool(message == value)


__all__ = ["UNIT", "Runner", "equals"]
