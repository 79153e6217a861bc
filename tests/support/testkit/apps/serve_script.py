"""Run by test_node_shutdown.py as its own OS process: a node serving a small tree.

Every child prints a line when it starts and when its terminate runs, so the test can
check the shutdown order that SIGTERM produces. ``ALIGHT_TEST_UNIT`` scales the
shutdown times, as in the tests.
"""

from __future__ import annotations

import os
from typing import Any

from alight.actors import ChildSpec, GenServer, Node, Supervisor, receive, spawn_link, trap_exit

UNIT = float(os.environ.get("ALIGHT_TEST_UNIT", "1.0"))
SHORT = 0.2 * UNIT


def say(line: str) -> None:
    print(line, flush=True)


class Announcer(GenServer):
    async def init(self, tag: str) -> None:
        self.tag = tag
        say(f"started {tag}")

    async def terminate(self, reason: Any) -> None:
        say(f"terminate {self.tag} {reason}")


class SlowToTerminate(GenServer):
    """Its terminate never finishes: it is killed after its shutdown time."""

    async def init(self) -> None:
        say("started slow")

    async def terminate(self, reason: Any) -> None:
        say(f"terminate slow {reason}")
        await receive(lambda m: m == "never")
        say("terminate slow finished")  # never printed


async def stubborn() -> None:
    """Traps exits and ignores the shutdown signal: killed after its shutdown time."""
    trap_exit(True)
    say("started stubborn")
    while True:
        message = await receive()
        say(f"stubborn ignores {message.reason}")


def main() -> None:
    children = [
        Announcer.child_spec("a", id="a"),
        Supervisor.child_spec([Announcer.child_spec("b1", id="b1"), Announcer.child_spec("b2", id="b2")], id="sup_b"),
        SlowToTerminate.child_spec(id="slow", shutdown=SHORT),
        ChildSpec(id="stubborn", start=lambda: spawn_link(stubborn), shutdown=SHORT),
        Announcer.child_spec("c", id="c"),
    ]
    Node("serve@127.0.0.1").serve(children)
    say("node stopped")


if __name__ == "__main__":
    main()
