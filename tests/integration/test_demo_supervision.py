"""``alight demo supervision``, run as a user runs it: the installed console script in a
subprocess.

``--script`` must exit 0 and report, for each strategy, exactly the restarts OTP
prescribes; the interactive mode must start and quit cleanly on ``q``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from testkit import UNIT

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, browsers): not in the fast lane


def _alight() -> list[str]:
    """The ``alight`` console script next to this interpreter (the venv's), or the
    equivalent ``python -m alight.cli`` when it is not installed as a script."""
    script = Path(sys.executable).with_name("alight")
    return [str(script)] if script.exists() else [sys.executable, "-m", "alight.cli"]


def _run(args: list[str], stdin: str | None) -> subprocess.CompletedProcess[str]:
    """Run ``alight *args``; a run that outlives its bound fails with what it printed."""
    try:
        return subprocess.run(
            [*_alight(), *args],
            input=stdin if stdin is not None else "", capture_output=True, text=True,
            timeout=20 * UNIT, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"alight {' '.join(args)} did not finish in {expired.timeout} s; it printed:\n{expired.stdout!r}")


def test_script_restarts_what_each_strategy_should() -> None:
    done = _run(["demo", "supervision", "--script"], None)
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{out}\nstderr:\n{done.stderr}"
    expected = [
        "one_for_one: crashed w2 -> restarted w2 (pids changed), kept w1 w3; expected w2: ok",
        "one_for_all: crashed w2 -> restarted w1 w2 w3 (pids changed); expected w1 w2 w3: ok",
        "rest_for_one: crashed w2 -> restarted w2 w3 (pids changed), kept w1; expected w2 w3: ok",
        # The burst: the restart that makes 4 in 5 s breaks the intensity, and the
        # top supervisor restarts the whole sub-tree (escalation).
        "one_for_all: crashed w1 -> supervisor exited (shutdown): more than 3 restarts in 5 s; demo restarted",
        "reached max restart intensity",
        "rest_for_one: killed supervisor",
        "(exited killed) -> demo restarted it as",
        "ok: all 5 steps matched their strategies",
    ]
    for line in expected:
        assert line in out, f"missing {line!r} in:\n{out}"
    assert "MISMATCH" not in out
    assert out.count("crash report:") == 6, out  # one per crash: 3 single crashes and a burst of 3
    assert done.stderr == "", done.stderr


def test_interactive_starts_and_quits_on_q() -> None:
    done = _run(["demo", "supervision"], "q\n")
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "alight supervision demo" in done.stdout
    assert "started demo" in done.stdout
    assert done.stderr == "", done.stderr


def test_without_a_terminal_or_pipe_it_says_to_use_script() -> None:
    with open("/dev/null") as devnull:  # as under nohup, cron or systemd
        done = subprocess.run(
            [*_alight(), "demo", "supervision"], stdin=devnull, capture_output=True, text=True, timeout=20 * UNIT
        )
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert "alight demo supervision --script" in done.stderr
