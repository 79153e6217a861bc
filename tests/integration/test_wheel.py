"""The package as a user gets it: the wheel, installed in a fresh virtualenv, outside the checkout.

Builds the wheel (`pip wheel`, with build isolation as any installer), checks what it holds
(the browser client and pages, ``py.typed``, the license, no test or benchmark code) and
that building it printed no setuptools warning, installs it with its dependencies in a new
venv, then from a directory without the checkout runs ``alight run
alight.examples.reference:app`` (the example every help text gives) and joins a room with
``alight client``. Network: only what pip needs for the dependencies (its cache first).
"""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from testkit import UNIT
from testkit.processes import REPO, free_port

pytestmark = pytest.mark.slow  # builds and installs: not in the fast lane


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    assert "warning" not in (built.stdout + built.stderr).lower(), (built.stdout + built.stderr)[-3000:]
    (path,) = out.glob("alight-*.whl")
    return path


def test_the_wheel_holds_the_package_and_nothing_else(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "alight/py.typed",
        "alight/channels/static/alight.js",
        "alight/channels/static/alight.mjs",
        "alight/dashboard/static/dashboard.html",
        "alight/demo/chat/static/index.html",
        "alight/examples/reference.py",
    ):
        assert needed in names, needed
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert not [n for n in names if n.startswith(("alight/tests/", "alight/benchmarks/", "alight/build/"))]
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Classifier: Typing :: Typed" in metadata
    assert "Provides-Extra: asgi" in metadata
    assert "Provides-Extra: redis" in metadata


def test_installed_from_the_wheel_the_example_serves_and_a_client_joins(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"  # no checkout on sys.path
    elsewhere.mkdir()
    port = free_port()
    alight = str(env_dir / "bin" / "alight")
    server = subprocess.Popen(
        [alight, "run", "alight.examples.reference:app", "--port", str(port)],
        cwd=elsewhere,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        client = subprocess.run(
            [alight, "client", f"ws://127.0.0.1:{port}/socket", "room:wheel", "--param", "user_id=w"],
            cwd=elsewhere,
            input='ping {"from": "wheel"}\n',
            capture_output=True,
            text=True,
            timeout=30 * UNIT,
        )
        assert client.returncode == 0, (client.stdout, client.stderr)
        assert '{"from": "wheel"}' in client.stdout or '{"from":"wheel"}' in client.stdout, client.stdout
    finally:
        server.terminate()
        output = server.communicate(timeout=30 * UNIT)[0].decode(errors="replace")
    assert f"listening on http://127.0.0.1:{port}" in output, output[-2000:]
    typed = "import alight, pathlib; print((pathlib.Path(alight.__file__).parent / 'py.typed').exists())"
    checked = subprocess.run(
        [str(python), "-c", typed],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.stdout.strip() == "True", checked.stderr
