"""alight's pytest plugin (``alight.channels.pytest_plugin``) as a user's pytest loads it:
a test file in a directory of its own, run by ``python -m pytest`` (the ``pytest11``
entry point), with tests that pass, fail, time out and misuse the marker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from testkit import UNIT

pytestmark = pytest.mark.slow  # a pytest of its own, as an OS process

TESTS = """
import asyncio

import pytest

from alight.actors import Node, call, GenServer, Reply, self_pid


class Echo(GenServer):
    async def handle_call(self, request, from_):
        return Reply(request)


@pytest.mark.alight
async def test_runs_as_a_process():
    pid = await Echo.start_link(None)
    assert await call(pid, "hi") == "hi"
    assert self_pid() is not None


@pytest.mark.alight
async def test_a_failed_assertion_fails():
    assert 1 == 2


@pytest.mark.alight(timeout=0.2)
async def test_a_test_that_waits_forever_times_out():
    await asyncio.sleep(3600)


@pytest.mark.alight
def test_not_async():
    pass


@pytest.mark.alight
async def test_on_the_node_it_asked_for(alight_node):
    from alight.actors.lowlevel import current_process

    assert current_process().node is alight_node


def test_sync_with_alight_run(alight_run, alight_node):
    async def main():
        return await call(await Echo.start_link(None), 7)

    assert alight_run(main) == 7
    assert isinstance(alight_node, Node)
"""


def test_the_plugin_runs_marked_async_tests_on_a_fresh_node(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(TESTS)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "test_user.py", "-q", "-rA", "-p", "no:cacheprovider"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60 * UNIT, check=False,
    )  # fmt: skip
    out = done.stdout
    assert "PASSED test_user.py::test_runs_as_a_process" in out, out
    assert "PASSED test_user.py::test_on_the_node_it_asked_for" in out, out
    assert "PASSED test_user.py::test_sync_with_alight_run" in out, out
    assert "FAILED test_user.py::test_a_failed_assertion_fails - assert 1 == 2" in out, out
    assert "FAILED test_user.py::test_a_test_that_waits_forever_times_out - TimeoutError" in out, out
    assert "test_not_async" in out
    assert "@pytest.mark.alight is for `async def` tests" in out, out
    assert "3 failed, 3 passed" in out, out


def test_the_plugin_can_be_turned_off(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text("def test_fixture_gone(alight_node):\n    pass\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "test_user.py", "-q", "-p", "no:alight", "-p", "no:cacheprovider"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60 * UNIT, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "fixture 'alight_node' not found" in done.stdout
