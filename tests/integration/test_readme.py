"""Every code block of README.md and docs/*.md, performed as a reader would paste it.

`PERFORMED` names, for each block (found by a line of its text), the test that runs it;
`test_every_block_is_performed` fails for a block no test runs, so the README cannot
gain an example that nobody runs, nor drift from one that is. The tests read each block
from the Markdown itself (`testkit.readme`): what they change is only where things are —
ports (4000 is the reader's), paths (``.venv/bin/alight``, the secret's file), and the
addresses of the machines (namespaces made by the test stand for 10.0.0.5 and 10.0.0.6)
— and every change is checked to still apply (`adapted`).

Files a block says to save (``chat.py``, ``rooms.py``, ``web.py``, ...) are saved under
those names in a temporary directory, which is where the commands run, as a reader's
project directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from testkit import UNIT
from testkit.browser import CHROMIUM, require_chromium
from testkit.cluster import SECRET
from testkit.hosts import hosts
from testkit.launcher import read_status
from testkit.processes import REPO, free_port, kill_group, run_node
from testkit.readme import DOCS, Block, project_blocks, readme_block
from testkit.redis_server import RedisServer

from alight.benchmarks._netns import Hosts

pytestmark = pytest.mark.slow  # OS processes (apps, nodes, uvicorn, a browser): not in the fast lane

ALIGHT = Path(sys.executable).with_name("alight")
WAIT = 15 * UNIT

PERFORMED: dict[str, str] = {
    # README.md
    "./dev demo ": "not here: .ci/run runs ./dev test; tests/cluster/test_chat_demo.py runs the demo as `alight demo`",
    'room.join().receive("ok", reply': "tests/cluster/test_chat_demo.py: in bob's page of the demo, by chat.js",
    "class Counter(GenServer)": "test_processes",
    'return Ok({"joined": topic})': "test_channels_and_the_client",
    "alight run chat:app": "test_channels_and_the_client",
    "from fastapi import FastAPI": "test_under_fastapi_and_starlette",
    "from starlette.applications import Starlette": "test_under_fastapi_and_starlette",
    'class UserSocket(Socket):\n    channels = {"room:*": RoomChannel}\n\n    async def connect': "test_presence_page",
    "@pytest.mark.alight\n": "test_testing_channels",
    "asyncio.run(main())  # against chat.py": "test_channels_and_the_client",
    '<script src="/alight.js">': "test_presence_page",
    "alight cluster start --nodes 2": "test_a_cluster_on_one_machine",
    "Drainer(batch_size=1_000": "test_drainer",
    "# on 10.0.0.5": "test_a_cluster_across_machines",
    "--pubsub redis://": "test_nodes_that_share_redis",
    "node.telemetry.attach": "test_telemetry",
    "/metrics | grep": "tests/cluster/test_chat_demo.py: against the demo's nodes",
    "class Clock(Extension)": "test_an_extension",
    "presence.simulation --seed 4 --trace": "test_the_simulation",
    "benchmarks/faults.py --duration 300": "not here: tests/cluster/test_nemesis.py runs the nemesis, shorter",
    "benchmarks/actors.py": "not here: the benchmark smoke tests (tests/*/test_*bench*_smoke.py) run them small",
    # docs/deploy.md
    "# file: deploy_app.py": "tests/integration/test_deploy_guide.py",
    "# each node of a machine": "test_a_cluster_across_machines",
    "# file: nginx/alight.conf": "tests/integration/test_deploy_guide.py",
    "# file: alight@.service": "tests/integration/test_deploy_guide.py",
    "# file: k8s/alight.yaml": "tests/integration/test_deploy_guide.py",
    "# file: Dockerfile": "not here: no Docker daemon on this machine (the guide says it is not built)",
}
"""A line of each block's text -> the test of this module (or the other test) that runs it."""


def test_every_block_is_performed() -> None:
    code = [block for block in project_blocks() if block.lang != "text"]  # text: a diagram
    unclaimed = [str(block) for block in code if not any(key in block.text for key in PERFORMED)]
    assert unclaimed == [], "blocks no test performs (add them to PERFORMED and run them)"
    for key, where in PERFORMED.items():
        holders = [str(block) for block in code if key in block.text]
        assert len(holders) == 1, f"{key!r} should name one block, names {holders}"
        name = where.split(":")[0]
        if name.startswith("test_"):
            assert name in globals(), f"{where} is not a test of this module"
        elif name.startswith("tests/"):
            assert (REPO / name).exists(), f"{name} does not exist"


def adapted(block: Block, *changes: tuple[str, str]) -> str:
    """``block``'s text with each ``(old, new)`` applied; fails if ``old`` is gone."""
    text = block.text
    for old, new in changes:
        assert old in text, f"{block}: {old!r} is no longer in the block; update the test"
        text = text.replace(old, new)
    return text


def guide_block(containing: str) -> Block:
    return readme_block(containing, DOCS / "deploy.md")


# -- the reader's project directory, and commands in it -------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory with the files the README says to save."""
    (tmp_path / "chat.py").write_text(readme_block('return Ok({"joined": topic})').text)
    (tmp_path / "rooms.py").write_text(readme_block("    async def connect(self, params").text)
    return tmp_path


@dataclass
class Shell:
    """A command of a block, running in its own session, its output in a file."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0
    """The HTTP port, for an app `served` on a free one."""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def interrupt(self) -> int:
        """Ctrl-C, as in the reader's terminal (the whole process group); the exit status."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=WAIT)

    def wait_for(self, text: str, timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.proc.poll() is not None:
                raise AssertionError(f"exited ({self.proc.returncode}) before {text!r}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged within {timeout} s:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        return self.log()


@contextlib.contextmanager
def shell(
    command: str, cwd: Path, log_path: Path, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
) -> Iterator[Shell]:
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*prefix, "bash", "-c", command],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Shell(proc, log_path)
    finally:
        kill_group(proc)


def python(code: str, cwd: Path, timeout: float = 60 * UNIT) -> str:
    """Run ``code`` as a script in ``cwd`` (as ``python file.py``); its output."""
    script = cwd / "block.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@contextlib.contextmanager
def served(spec: str, cwd: Path, log_path: Path) -> Iterator[Shell]:
    """``alight run SPEC`` from ``cwd`` on a free port (``shell.port``), once it listens."""
    port = free_port()
    with shell(f"{ALIGHT} run {spec} --port {port}", cwd, log_path) as started:
        started.port = port
        started.wait_for(f"listening on http://127.0.0.1:{port}")
        yield started


def client_block(port: int) -> str:
    return adapted(readme_block("asyncio.run(main())  # against chat.py"), ("127.0.0.1:4000", f"127.0.0.1:{port}"))


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5 * UNIT) as response:
        body: bytes = response.read()
        return body


# -- the blocks ------------------------------------------------------------------------------


def test_processes(tmp_path: Path) -> None:
    assert python(readme_block("class Counter(GenServer)").text, tmp_path) == "15\n"


def test_channels_and_the_client(project: Path) -> None:
    port = free_port()
    command = adapted(readme_block("alight run chat:app"), (".venv/bin/alight", str(ALIGHT)), ("4000", str(port)))
    with shell(command, project, project / "chat.log") as app:
        app.wait_for(f"listening on http://127.0.0.1:{port}")
        # The client block prints the reply it shows in its comment.
        assert python(client_block(port), project) == "Reply(status='ok', response={'n': 1})\n"
        log = app.wait_for("JOINED room:lobby")
    assert "CONNECTED TO UserSocket" in log


def test_under_fastapi_and_starlette(project: Path) -> None:
    (project / "web.py").write_text(readme_block("from fastapi import FastAPI").text)
    (project / "starlette_web.py").write_text(readme_block("from starlette.applications import Starlette").text)
    for module in ("web", "starlette_web"):
        port = free_port()
        command = f"{sys.executable} -m uvicorn {module}:app --port {port}"  # as the README's `uvicorn web:app`
        with shell(command, project, project / f"{module}.log") as server:
            server.wait_for("Application startup complete")
            assert json.loads(get(f"http://127.0.0.1:{port}/api/status")) == {"status": "ok"}
            assert b"alight" in get(f"http://127.0.0.1:{port}/alight.js")[:2000]
            assert python(client_block(port), project) == "Reply(status='ok', response={'n': 1})\n"
            assert server.interrupt() == 0, server.log()  # the lifespan's end stops alight's node
        assert "Application shutdown complete" in server.log()


def test_presence_page(project: Path) -> None:
    require_chromium()
    page = readme_block('<script src="/alight.js">').text
    (project / "page.html").write_text(f"<!doctype html>\n<title>rooms</title>\n{page}")
    (project / "page_app.py").write_text(
        "from pathlib import Path\n\n"
        "from alight.transports.http import HttpResponse\n"
        "from rooms import app\n\n"
        "PAGE = Path(__file__).with_name('page.html').read_text()\n\n\n"
        "async def index(request):\n"
        "    return HttpResponse.text(PAGE, content_type='text/html; charset=utf-8')\n\n\n"
        "app.route('GET', '/', index)\n"
    )
    with served("page_app:app", project, project / "page.log") as app:
        # localhost: the endpoint's host, so the page's Origin passes the default check.
        run = run_node(
            "readme_page.js", f"http://localhost:{app.port}/", '["ann","bob"]', str(CHROMIUM), timeout=50 * UNIT
        )
        assert run.returncode == 0, run.transcript()
        assert run["page"]["errors"] == []
        # The socket refuses a connection without a user, as the block says (long-poll
        # answers a refusal as Phoenix does: 200 with the status in the JSON body).
        assert json.loads(get(f"http://127.0.0.1:{app.port}/socket/longpoll?vsn=2.0.0")) == {"status": 403}
        log = app.log()
    assert re.search(r"CONNECTED TO UserSocket in \S+ \(websocket", log), log
    assert re.search(r"CONNECTED TO UserSocket in \S+ \(longpoll", log), log


def test_testing_channels(project: Path) -> None:
    (project / "test_chat.py").write_text(readme_block("@pytest.mark.alight\n").text)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "test_chat.py", "-q", "-p", "no:cacheprovider"],
        cwd=project, capture_output=True, text=True, timeout=60 * UNIT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_telemetry(project: Path) -> None:
    out = python(readme_block("node.telemetry.attach").text, project)
    assert re.fullmatch(r"room:lobby ok \d+\.\d\d ms\n", out), out


def test_drainer(tmp_path: Path) -> None:
    block = readme_block("Drainer(batch_size=1_000")
    out = python(
        block.text + "print(app.drainer.batch_size, app.drainer.batch_interval, app.drainer.shutdown)\n", tmp_path
    )
    assert out == "1000 0.5 30.0\n"  # what the block's Drainer(...) says


def test_an_extension(tmp_path: Path) -> None:
    (tmp_path / "clock_block.py").write_text(readme_block("class Clock(Extension)").text)
    with served("clock_block:app", tmp_path, tmp_path / "clock.log") as app:
        deadline = time.monotonic() + WAIT
        while int(get(f"http://127.0.0.1:{app.port}/clock")) < 1:
            assert time.monotonic() < deadline, "the clock never ticked"
            time.sleep(0.1)


def test_the_simulation(tmp_path: Path) -> None:
    soak = adapted(
        readme_block("presence.simulation --seed 4 --trace"),
        (".venv/bin/python", sys.executable),
        ("--seeds 10000", "--seeds 20"),  # the soak, shorter (tests/unit runs thousands)
    )
    done = subprocess.run(["sh", "-c", soak], cwd=REPO, capture_output=True, text=True, timeout=120 * UNIT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "seeds: 20 kept every invariant, 0 did not" in done.stdout
    assert "n0 starts" in done.stdout  # the trace of seed 4
    assert "seeds: 1 kept every invariant, 0 did not" in done.stdout


def test_a_cluster_on_one_machine(tmp_path: Path) -> None:
    port, status = free_port(), tmp_path / "cluster.json"
    command = adapted(
        readme_block("alight cluster start --nodes 2"),
        (".venv/bin/alight", str(ALIGHT)),
        ("--port 4000", f"--port {port}"),
        ("/tmp/cluster.json", str(status)),
    )
    with shell(command, REPO, tmp_path / "launcher.log", {"ALIGHT_CLUSTER_SECRET": SECRET}) as launcher:
        deadline = time.monotonic() + 2 * WAIT
        while not (status.exists() and [n["state"] for n in read_status(status)] == ["up", "up"]):
            assert launcher.proc.poll() is None, launcher.log()[-3000:]
            assert time.monotonic() < deadline, launcher.log()[-3000:]
            time.sleep(0.1)
        assert get(f"http://127.0.0.1:{port}/health") == b"ok"
        pids = [node["pid"] for node in read_status(status)]
        assert launcher.interrupt() == 0, launcher.log()[-3000:]  # Ctrl-C stops the nodes
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_nodes_that_share_redis(project: Path, redis_server: RedisServer) -> None:
    secret = project / "secret"
    secret.write_text(SECRET)
    block = readme_block("--pubsub redis://")
    nodes = []
    with contextlib.ExitStack() as stack:
        for i in range(2):
            port = free_port()
            command = adapted(
                block,
                ("/etc/alight/secret", str(secret)),
                ("alight run", f"{ALIGHT} run"),
                ("--port 4000", f"--port {port}"),
                ("redis://10.0.0.9:6379/0", redis_server.url),
            )
            node = stack.enter_context(shell(command, REPO, project / f"node{i}.log"))
            node.wait_for(f"listening on http://127.0.0.1:{port}")
            nodes.append((node, port))
        # A client on the first node hears a broadcast made through the second.
        with python_listener(project, nodes[0][1]) as listener:
            listener.wait_for("joined")
            body = json.dumps({"topic": "room:redis", "event": "shout", "payload": {"via": "redis"}}).encode()
            deadline = time.monotonic() + WAIT
            while "shout" not in listener.log():  # until both nodes' subscriptions are up
                assert time.monotonic() < deadline, listener.log()
                request = urllib.request.Request(f"http://127.0.0.1:{nodes[1][1]}/api/broadcast", body, method="POST")
                urllib.request.urlopen(request, timeout=5 * UNIT).close()
                time.sleep(0.2)


def python_listener(cwd: Path, port: int) -> contextlib.AbstractContextManager[Shell]:
    """A Python client joined to room:redis on ``port``, printing what it gets."""
    (cwd / "listener.py").write_text(
        "import asyncio\n"
        "from alight.client import Socket\n\n\n"
        "async def main():\n"
        f"    async with Socket('ws://127.0.0.1:{port}/socket') as socket:\n"
        "        room = socket.channel('room:redis')\n"
        "        room.on('shout', lambda payload: print('shout', payload, flush=True))\n"
        "        await room.join()\n"
        "        print('joined', flush=True)\n"
        "        await asyncio.sleep(3600)\n\n\n"
        "asyncio.run(main())\n"
    )
    return shell(f"{sys.executable} listener.py", cwd, cwd / "listener.log")


def test_a_cluster_across_machines(tmp_path: Path) -> None:
    """The README's two machines, then the guide's two nodes of one machine joining them."""
    readme = readme_block("# on 10.0.0.5")
    guide = guide_block("# each node of a machine")
    (tmp_path / "deploy_app.py").write_text(guide_block("# file: deploy_app.py").text)
    env = {"ALIGHT_CLUSTER_SECRET": SECRET}
    with hosts(2) as machines, contextlib.ExitStack() as stack:
        first, second = machines.address(0), machines.address(1)
        where = (("10.0.0.5", first), ("10.0.0.6", second), ("alight node", f"{ALIGHT} node"))
        commands = split_commands(adapted(readme, *where))
        assert [comment for comment, _ in commands] == [f"# on {first} (the first node: no seed)", f"# on {second}"]
        started = []
        for index, (_, command) in enumerate(commands):
            started.append(stack.enter_context(
                shell(command, REPO, tmp_path / f"machine{index}.log", env, tuple(machines.prefix(index)))
            ))  # fmt: skip
        started[0].wait_for(f"node web@{second} is up")
        started[1].wait_for(f"node web@{first} is up")
        assert get_in(machines, 1, f"http://{second}:4000/health") == "ok"

        # The guide: two nodes on the first machine (in place of the README's), sharing a port,
        # seeded by the second machine and by each other.
        kill_group(started[0].proc)
        started[1].wait_for(f"node web@{first} is down")
        for index, (_, command) in enumerate(split_commands(adapted(guide, *where))):
            node = stack.enter_context(
                shell(command, tmp_path, tmp_path / f"web{index + 1}.log", env, tuple(machines.prefix(0)))
            )
            node.wait_for(f"node web@{second} is up", timeout=2 * WAIT)
        started[1].wait_for(f"node web1@{first} is up")
        started[1].wait_for(f"node web2@{first} is up")


def split_commands(text: str) -> list[tuple[str, str]]:
    """A shell block's commands (continuation lines joined), each with the comment line above it."""
    commands: list[tuple[str, str]] = []
    comment, current = "", ""
    for line in text.splitlines():
        if line.startswith("#"):
            comment = line
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            commands.append((comment, current.strip()))
            current = ""
    return commands


def get_in(machines: Hosts, index: int, url: str) -> str:
    """GET ``url`` from inside machine ``index``'s namespace (its address is not routed here)."""
    prefix = machines.prefix(index)
    fetch = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    done = subprocess.run(
        [*prefix, sys.executable, "-c", fetch], capture_output=True, text=True, timeout=30 * UNIT, check=True
    )
    return done.stdout.strip()
