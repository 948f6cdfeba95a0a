"""The bulk path of SSH targets: the cipher the connection negotiates with OpenSSH's sshd,
and when an upload compresses (only on a slow link), against real processes: the test
sshd, and the agent started as `python -m targets.agent serve` on pipes."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from targets.compute._agent import StreamAgentClient
from targets.compute.base import no_progress
from tests.sshd import SSHServer, ssh_connect_fixture, sshd_fixture, sshd_server_fixture  # noqa: F401


def test_the_connection_uses_aes_gcm_with_openssh(ssh_connect: Callable[..., object]) -> None:
    """One authenticated cipher (no separate HMAC per packet), host key still checked
    (the fixture's connection accepted it into its own known_hosts)."""
    conn = ssh_connect()
    transport = conn.transport  # type: ignore[attr-defined]
    assert transport.local_cipher == "aes128-gcm@openssh.com"
    assert transport.remote_cipher == "aes128-gcm@openssh.com"
    assert conn.run("echo ok")[1] == b"ok\n"  # type: ignore[attr-defined]


class _Counting:
    """The agent's stdin, counting the bytes written; ``rate``: at most that many bytes
    per second, as a slow network link would take them."""

    def __init__(self, pipe: IO[bytes], rate: float | None = None) -> None:
        self.pipe = pipe
        self.rate = rate
        self.written = 0

    def write(self, data: bytes) -> int:
        self.pipe.write(data)
        self.written += len(data)
        if self.rate:
            time.sleep(len(data) / self.rate)
        return len(data)

    def flush(self) -> None:
        self.pipe.flush()


@pytest.fixture
def text_files(tmp_path: Path) -> list[tuple[str, Path, int]]:
    rng = random.Random(18)
    words = ["".join(rng.choices("abcdefghij", k=rng.randint(2, 8))) for _ in range(500)]
    items = []
    for i in range(16):  # 16 MB of text that deflate shrinks to well under half
        data = " ".join(rng.choices(words, k=220_000)).encode()[: 1 << 20]
        path = tmp_path / f"t{i}.txt"
        path.write_bytes(data)
        items.append((hashlib.sha256(data).hexdigest(), path, len(data)))
    return items


@pytest.fixture
def agent(
    tmp_path: Path,
) -> Iterator[Callable[[float | None], tuple[StreamAgentClient, _Counting]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(rate: float | None) -> tuple[StreamAgentClient, _Counting]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "targets.agent", "serve", str(tmp_path / f"root{len(procs)}")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        procs.append(proc)
        assert proc.stdin is not None and proc.stdout is not None
        counting = _Counting(proc.stdin, rate)
        return StreamAgentClient(proc.stdout, counting), counting  # type: ignore[arg-type]

    yield start
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def _stored(root: Path, items: list[tuple[str, Path, int]]) -> bool:
    return all(
        hashlib.sha256((root / "objects" / key[:2] / key).read_bytes()).hexdigest() == key
        for key, _, _ in items
    )


def test_a_fast_link_gets_the_bytes_as_they_are(
    agent: Callable[[float | None], tuple[StreamAgentClient, _Counting]],
    text_files: list[tuple[str, Path, int]],
    tmp_path: Path,
) -> None:
    """A pipe to a local agent takes hundreds of MB/s: compressing would only cost CPU."""
    client, counting = agent(None)
    client.put(text_files, no_progress)
    total = sum(size for _, _, size in text_files)
    assert counting.written >= total
    assert _stored(tmp_path / "root0", text_files)


def test_a_slow_link_gets_text_compressed(
    agent: Callable[[float | None], tuple[StreamAgentClient, _Counting]],
    text_files: list[tuple[str, Path, int]],
    tmp_path: Path,
) -> None:
    """At 4 MB/s (a WAN), what shrinks is compressed once the link has been judged."""
    client, counting = agent(4e6)
    client.put(text_files, no_progress)
    total = sum(size for _, _, size in text_files)
    assert counting.written < 0.8 * total, (counting.written, total)
    assert _stored(tmp_path / "root0", text_files)
