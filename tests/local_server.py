"""Start a test server process on 127.0.0.1, wait until its port answers, stop it after.

The storage emulators (Azurite, moto's S3 server, the GCS emulator) each run one server
per test process; this is the one way they are started and stopped. When the server
exits or does not answer within a minute, the test is skipped with the end of its log,
or failed when ``CI`` is set.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.dockerd import skip_or_fail

__all__ = ["ObjectStore", "free_port", "local_server", "server_executable"]


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def local_server(
    name: str,
    argv: Sequence[str],
    port: int,
    *,
    workdir: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> Iterator[Path]:
    """Run ``argv`` (which must listen on 127.0.0.1:``port``) until the block ends. Yields
    its working folder (a new temporary one unless ``workdir`` is given; removed after)."""
    folder = workdir or Path(tempfile.mkdtemp(prefix=f"targets-{name}-"))
    log_path = folder / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=folder,
            env=dict(env) if env is not None else None,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        tail = log_path.read_text(errors="replace")[-2000:]
                        skip_or_fail(f"{name} did not start on 127.0.0.1:{port}: {tail}")
                    time.sleep(0.1)
            yield folder
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            shutil.rmtree(folder, ignore_errors=True)


def server_executable(name: str, module: str, hint: str) -> str:
    """The emulator's command ``name`` (beside this Python first, then on PATH), after
    checking that the file system the tests arrange data with (``module``) imports;
    skips (fails with ``CI`` set) with ``hint`` otherwise."""
    executable = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if executable is None:
        skip_or_fail(f"{name} is not installed: {hint}")
    try:
        __import__(module)
    except ImportError:
        skip_or_fail(f"{module} is not installed: {hint}")
    assert executable is not None
    return executable


class ObjectStore:
    """What the object-store emulators share: writing test data through their fsspec
    file system (``filesystem()``, defined by each)."""

    def filesystem(self) -> Any:
        raise NotImplementedError

    def put(self, path: str, data: bytes) -> None:
        """Write ``bucket/key``, creating the bucket when needed."""
        fs = self.filesystem()
        bucket = path.split("/", 1)[0]
        if not fs.exists(bucket):
            fs.mkdir(bucket)
        fs.pipe(path, data)
