"""``docs/deploy.md``, performed: its app behind its nginx block, with TLS, through the
official phoenix client; its systemd unit verified; its Kubernetes manifests checked
against the app, the CLI and the drainer.

Every block of the guide that starts with ``# file: NAME`` is read from the guide itself,
so a change to the guide is a change to what runs here. What the test changes is only
where things are (ports, certificate and log paths, the alight binary) and, for nginx,
``proxy_bind 127.0.0.2`` so that the app's peer (the proxy) differs from the client: the
client address the app replies with can only have come from ``X-Forwarded-For``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit import UNIT
from testkit.processes import REPO, free_port, kill_group, run_node, running_app
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect
from websockets.typing import Origin

from alight.channels import Drainer

pytestmark = pytest.mark.slow  # OS processes (nginx, the app, node): not in the fast lane

GUIDE = REPO / "docs" / "deploy.md"
ALIGHT = Path(sys.executable).with_name("alight")
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
"""nginx's temporary directories, moved under the test's own."""


def guide_files() -> dict[str, str]:
    """The guide's ``# file: NAME (...)`` blocks, by NAME."""
    files = {}
    for match in re.finditer(r"```[a-z]*\n# file: (\S+)[^\n]*\n(.*?)```", GUIDE.read_text(), re.S):
        files[match[1]] = match[2]
    return files


def test_the_guide_has_every_file_it_names() -> None:
    assert set(guide_files()) == {
        "deploy_app.py",
        "nginx/alight.conf",
        "alight@.service",
        "k8s/alight.yaml",
        "Dockerfile",
    }


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def nginx(request: pytest.FixtureRequest, tmp_path: Path, certificate: tuple[Path, Path]) -> Iterator[tuple[int, Any]]:
    """The guide's app, and nginx in front of it with the guide's server block: (the TLS
    port, the app). Parametrized indirectly, the value replaces ``proxy_read_timeout``."""
    binary = shutil.which("nginx")
    if binary is None:
        if os.environ.get("ALIGHT_REQUIRE_BROWSER"):
            pytest.fail("ALIGHT_REQUIRE_BROWSER is set but nginx is not installed (./dev test installs it)")
        pytest.skip("nginx is not installed (./dev test installs Debian's)")
    files = guide_files()
    (tmp_path / "deploy_app.py").write_text(files["deploy_app.py"])
    cert, key = certificate
    with running_app("deploy_app:app", tmp_path / "app.log", cwd=tmp_path) as app:
        port = free_port()
        block = (
            files["nginx/alight.conf"]
            .replace("server 127.0.0.1:4000;", f"server 127.0.0.1:{app.port};")
            .replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
            .replace("/etc/ssl/alight/cert.pem", str(cert))
            .replace("/etc/ssl/alight/key.pem", str(key))
            .replace("proxy_pass http://alight;", "proxy_pass http://alight;\n        proxy_bind 127.0.0.2;")
        )
        read_timeout = getattr(request, "param", None)
        if read_timeout is not None:
            assert "proxy_read_timeout 75s;" in block
            block = block.replace("proxy_read_timeout 75s;", f"proxy_read_timeout {read_timeout};")
        for placed in (f"127.0.0.1:{app.port}", f"127.0.0.1:{port}", str(cert), str(key), "proxy_bind"):
            assert placed in block  # the guide still says what is replaced
        temp = tmp_path / "nginx"
        temp.mkdir()
        config = tmp_path / "nginx.conf"
        config.write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"daemon off;\npid {temp}/nginx.pid;\nerror_log {temp}/error.log info;\nevents {{}}\n"
            + f"http {{\n    access_log {temp}/access.log;\n"
            + "".join(
                f"    {kind}_temp_path {temp}/{kind};\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
            + block
            + "}\n"
        )
        checked = subprocess.run([binary, "-t", "-p", str(temp), "-c", str(config)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        proc = subprocess.Popen([binary, "-p", str(temp), "-c", str(config)], start_new_session=True)
        try:
            deadline = time.monotonic() + 10 * UNIT
            while True:  # bounded: until nginx listens
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                assert proc.poll() is None, (temp / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.05)
            yield port, app
        finally:
            kill_group(proc)


def test_phoenix_client_through_nginx_with_tls(
    nginx: tuple[int, Any], certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _app = nginx
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", str(certificate[0]))  # trust the test's certificate
    run = run_node("behind_proxy.js", f"127.0.0.1:{port}", timeout=30 * UNIT)
    errors = [line for line in run.lines if "error" in line]
    assert not errors, (errors, run.stderr)
    # The app's peer is the proxy (127.0.0.2): the client's address came in X-Forwarded-For.
    assert run.by_check["websocket"]["reply"] == {"client": "127.0.0.1", "transport": "websocket"}
    assert run.by_check["longpoll"]["reply"] == {"client": "127.0.0.1", "transport": "longpoll"}
    assert "done" in run.by_check


@pytest.mark.parametrize("nginx", ["1s"], indirect=True)
def test_nginx_closing_an_idle_websocket_is_counted_and_explained(
    nginx: tuple[int, Any], certificate: tuple[Path, Path]
) -> None:
    """Why the guide's proxy_read_timeout is above the heartbeat: with 1 s, nginx cuts a
    joined, quiet WebSocket; the app logs a 1006 with the likely cause, the client sees its
    connection end."""
    port, app = nginx
    context = ssl.create_default_context(cafile=str(certificate[0]))
    url = f"wss://127.0.0.1:{port}/socket/websocket?vsn=2.0.0"
    with ws_connect(url, ssl=context, origin=Origin("https://alight.example.com"), open_timeout=10 * UNIT) as ws:
        ws.send(json.dumps(["1", "1", "info:idle", "phx_join", {}]))
        reply = json.loads(ws.recv(timeout=10 * UNIT))
        assert reply[3:] == [
            "phx_reply",
            {"status": "ok", "response": {"client": "127.0.0.1", "transport": "websocket"}},
        ]
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10 * UNIT)  # nothing is sent: nginx's timeout ends it
        assert time.monotonic() - started < 5 * UNIT
    line = app.wait_for_log("without a close frame (1006")
    assert "proxy_read_timeout" in line


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    verify = shutil.which("systemd-analyze")
    if verify is None:
        pytest.skip("systemd-analyze is not installed")
    env = tmp_path / "env"
    env.write_text("ALIGHT_CLUSTER_SECRET=test-cluster-secret-0123456789abcdef\n")
    unit = (
        guide_files()["alight@.service"]
        .replace("/opt/alight/.venv/bin/alight", str(ALIGHT))
        .replace("/etc/alight/env", str(env))
        .replace("/opt/alight", str(tmp_path))
        .replace("User=alight", "User=root")
    )
    path = tmp_path / "alight@1.service"
    path.write_text(unit)
    result = subprocess.run([verify, "verify", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "TimeoutStopSec=45" in unit
    assert Drainer().shutdown + 5 < 45  # the drain and the listener's stop fit in the stop timeout


def test_the_kubernetes_manifests_fit_the_app_the_cli_and_the_drainer() -> None:
    yaml = pytest.importorskip("yaml")
    from alight.cli import node_command

    service, deployment = yaml.safe_load_all(guide_files()["k8s/alight.yaml"])
    assert service["kind"] == "Service"
    assert service["spec"]["clusterIP"] == "None"  # headless: DNS answers the pods' addresses
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    args = container["args"]
    assert args[0] == "node"
    options = node_command.make_context("node", args[1:]).params  # the real CLI parses them
    name = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    cluster_port = service["spec"]["ports"][0]["port"]
    assert options["discover"] == f"dns:{name}:{cluster_port}"
    assert options["cluster_port"] == cluster_port
    assert options["cluster_host"] == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": options["port"], "cluster": cluster_port}
    env = {e["name"]: e for e in container["env"]}
    assert env["ALIGHT_CLUSTER_ADVERTISE"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    probe = container["readinessProbe"]["httpGet"]
    assert probe["port"] == options["port"]
    assert probe["path"] == "/health"
    assert 'app.route("GET", "/health", health)' in guide_files()["deploy_app.py"]
    assert pod["spec"]["terminationGracePeriodSeconds"] > Drainer().shutdown + 5
