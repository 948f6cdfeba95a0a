"""The Docker test setup works: the engine runs containers of the locally built base image
with no network and with the host's network, python3 and venv work inside, and a container
run as a given uid:gid writes files with that ownership into a bind-mounted folder."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dockerd import (  # noqa: F401 - fixture, found by pytest under its name
    DockerCommandFailed,
    DockerEngine,
    docker_engine_fixture,
    unavailable_reason,
)
from tests.sshd import skip_or_fail


def run_python(engine: DockerEngine, code: str, *docker_args: str) -> str:
    """stdout of ``python3 -c code`` in a throwaway container (no network unless given)."""
    if "--network" not in docker_args:
        docker_args = ("--network", "none", *docker_args)
    return engine.run("run", "--rm", *docker_args, engine.image, "python3", "-c", code).stdout


def test_python_runs_with_no_network(docker_engine: DockerEngine) -> None:
    out = run_python(
        docker_engine,
        "import socket, sys; print(sys.version_info[:2] >= (3, 11), socket.if_nameindex())",
    )
    # --network none: the loopback interface only.
    assert out == "True [(1, 'lo')]\n"


def test_venv_and_pip_work_inside(docker_engine: DockerEngine) -> None:
    script = (
        "set -e; python3 -m venv /tmp/venv; "
        "/tmp/venv/bin/python -c 'import sys; print(sys.prefix)'; "
        "/tmp/venv/bin/python -m pip --version"
    )
    out = docker_engine.run(
        "run", "--rm", "--network", "none", docker_engine.image, "sh", "-c", script
    ).stdout
    prefix, pip_version = out.splitlines()
    assert prefix == "/tmp/venv"
    assert pip_version.startswith("pip ") and "/tmp/venv/" in pip_version


def test_container_user_owns_files_in_bind_mount(
    docker_engine: DockerEngine, tmp_path: Path
) -> None:
    shared = tmp_path / "run"
    shared.mkdir()
    shared.chmod(0o777)  # writable by the container's uid, whoever runs the tests
    uid, gid = 4321, 4322
    out = run_python(
        docker_engine,
        "import os; open('/run-folder/out.txt', 'w').write('hi'); print(os.getuid(), os.getgid())",
        "--user",
        f"{uid}:{gid}",
        "-v",
        f"{shared}:/run-folder",
    )
    assert out == f"{uid} {gid}\n"
    written = (shared / "out.txt").stat()
    assert (written.st_uid, written.st_gid) == (uid, gid)
    assert (shared / "out.txt").read_text() == "hi"


@pytest.fixture
def loopback_echo() -> Iterator[tuple[int, list[bytes]]]:
    """A one-shot TCP server on 127.0.0.1: answers ``pong:<request>``; yields (port, requests)."""
    received: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(60)

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:  # closed by the fixture's teardown, or timed out
            return
        with conn:
            data = conn.recv(1024)
            received.append(data)
            conn.sendall(b"pong:" + data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    server.close()
    thread.join(timeout=10)


def test_host_network_reaches_loopback_server(
    docker_engine: DockerEngine, loopback_echo: tuple[int, list[bytes]]
) -> None:
    port, received = loopback_echo
    code = (
        "import socket\n"
        f"s = socket.create_connection(('127.0.0.1', {port}), timeout=20)\n"
        "s.sendall(b'ping'); print(s.recv(1024).decode())"
    )
    assert run_python(docker_engine, code, "--network", "host") == "pong:ping\n"
    assert received == [b"ping"]


def test_host_ca_bundle_is_trusted_inside(docker_engine: DockerEngine) -> None:
    args = docker_engine.host_ca_args()
    if not args:
        skip_or_fail(
            "this host has no CA bundle at /etc/ssl/certs/ca-certificates.crt: "
            "`apt-get install ca-certificates`"
        )
    code = (
        "import os, ssl\n"
        "ctx = ssl.create_default_context(cafile=os.environ['PIP_CERT'])\n"
        "print(len(ctx.get_ca_certs()) > 0)"
    )
    assert run_python(docker_engine, code, *args) == "True\n"


def test_failed_command_shows_code_and_output(docker_engine: DockerEngine) -> None:
    with pytest.raises(DockerCommandFailed) as failed:
        run_python(docker_engine, "import sys; print('partial'); sys.exit(3)")
    assert failed.value.returncode == 3
    assert "exited with 3" in str(failed.value) and "partial" in str(failed.value)


def test_skip_reason_names_the_setup_script(
    docker_engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    absent = DockerEngine(docker_engine.docker, image="targets-test-absent:none")
    reason = unavailable_reason(absent)
    assert reason is not None and "scripts/test-services.sh" in reason
    assert unavailable_reason(docker_engine) is None
    monkeypatch.setenv("DOCKER_HOST", f"unix://{os.devnull}.missing.sock")
    reason = unavailable_reason(docker_engine)
    assert reason is not None and "no Docker engine answers" in reason
