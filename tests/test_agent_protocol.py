"""The agent's wire protocol, end to end over a pipe to the shipped zipapp.

This is the same program and protocol the SSH kinds use, with the SSH hop replaced by a
pipe: it runs the contract suite through the protocol, with the system Python and (when
installed) the oldest Python the agent supports.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from pydantic import BaseModel, ConfigDict

from targets.agent.server import read_frame, write_chunks, write_frame
from targets.compute._agent import (
    AgentClient,
    AgentError,
    AgentTarget,
    StreamAgentClient,
    agent_bundle,
)
from targets.compute.base import Capability, TargetContext
from targets.testing import ComputeTargetContract, make_request, wait_for_end
from tests.oldest_python import oldest_python


def _pythons() -> list[str]:
    """This interpreter, plus the oldest Python >= 3.8 on the machine when it is older
    (tests/test_agent_python_floor.py checks the 3.8 floor itself)."""
    oldest = oldest_python()
    older = oldest is not None and oldest[1] < sys.version_info[:2]
    return [sys.executable] + ([oldest[0]] if oldest and older else [])


class PipeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    root: str
    python: str = sys.executable


class PipeTarget(AgentTarget):
    """A test kind: the agent zipapp started as a child process, spoken to over pipes."""

    kind = "pipe"
    options_model = PipeOptions
    capabilities = frozenset({Capability.CANCEL, Capability.LIVE_LOGS, Capability.VIRTUALENV})

    def __init__(
        self, name: str, options: PipeOptions, context: TargetContext | None = None
    ) -> None:
        super().__init__(name, options, context)
        self.default_python = options.python

    def connect_agent(self) -> AgentClient:
        options = self.options
        assert isinstance(options, PipeOptions)
        root = Path(options.root)
        version, data = agent_bundle()
        bundle = root.parent / f"agent-{version}.pyz"
        if not bundle.exists():
            bundle.write_bytes(data)
        proc = subprocess.Popen(
            [options.python, str(bundle), "serve", str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdin and proc.stdout

        writer = self.writer(proc.stdin)

        def close() -> None:
            writer.close()
            proc.wait(10)

        return StreamAgentClient(proc.stdout, writer, on_close=close)

    def writer(self, stdin: IO[bytes]) -> IO[bytes]:
        """What the client writes its requests to (the agent's stdin; a subclass may
        wrap it)."""
        return stdin


def make_target(tmp_path: Path, python: str = sys.executable) -> PipeTarget:
    return PipeTarget("pipe", PipeOptions(root=str(tmp_path / "remote-root"), python=python))


@pytest.mark.parametrize("python", _pythons())
class TestPipeContract(ComputeTargetContract):
    @pytest.fixture
    def target(self, tmp_path: Path, python: str) -> Iterator[PipeTarget]:
        with make_target(tmp_path, python) as target:
            yield target


def test_unchanged_project_sends_nothing_and_one_change_sends_one_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"data{i}.txt").write_text(f"content {i}\n" * 100)
    (src / "main.py").write_text("print('hi')\n")
    with make_target(tmp_path) as target:
        first = target.submit(make_request(src))
        assert first.data["uploaded"] == 21
        wait_for_end(target, first)
        second = target.submit(make_request(src))
        assert second.data["uploaded"] == 0
        (src / "data7.txt").write_text("changed\n")
        third = target.submit(make_request(src))
        assert third.data["uploaded"] == 1
        for handle in (second, third):
            assert wait_for_end(target, handle).status.value == "Completed"


def _raw_agent(tmp_path: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "targets.agent", "serve", str(tmp_path / "r")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout
    read_frame(proc.stdout)  # hello
    return proc


def _upload(
    proc: subprocess.Popen[bytes], objects: list[tuple[str, bytes, bool]], cut: int | None = None
) -> None:
    """Send objects as the client does: ``(key, data, compressed)``."""
    assert proc.stdin
    body = b""
    for key, data, compressed in objects:
        meta = json.dumps({"key": key, "size": len(data), "z": compressed}).encode()
        body += struct.pack(">I", len(meta)) + meta
        body += zlib.compress(data) if compressed else data
    end = json.dumps({"end": True}).encode()
    body += struct.pack(">I", len(end)) + end
    write_frame(proc.stdin, {"op": "put", "args": {}})
    if cut is not None:  # the client dies mid-transfer
        proc.stdin.write(struct.pack(">I", len(body)) + body[:cut])
        proc.stdin.close()
        return
    write_chunks(proc.stdin, [body])


def test_a_damaged_object_is_refused_and_never_stored(tmp_path):
    import hashlib

    good = b"real content"
    digest = hashlib.sha256(good).hexdigest()
    proc = _raw_agent(tmp_path)
    _upload(proc, [(digest, b"tampered!!!!", False)])
    assert proc.stdout
    header, _ = read_frame(proc.stdout)
    assert header["ok"] is False and "damaged" in header["error"]
    # the session is still usable, and the object is still missing
    assert proc.stdin
    write_frame(
        proc.stdin, {"op": "missing", "args": {"rows": [["f", len(good), 0o644, digest, None]]}}
    )
    header, _ = read_frame(proc.stdout)
    assert header["result"] == [digest]
    proc.stdin.close()
    proc.wait(10)
    assert not list((tmp_path / "r" / "objects").rglob(digest + "*"))


def test_an_interrupted_upload_leaves_no_object(tmp_path):
    import hashlib

    data = b"x" * 100_000
    digest = hashlib.sha256(data).hexdigest()
    proc = _raw_agent(tmp_path)
    _upload(proc, [(digest, data, True)], cut=200)
    proc.wait(10)
    objects = tmp_path / "r" / "objects"
    assert not [p for p in objects.rglob("*") if p.is_file()] if objects.exists() else True


@pytest.mark.parametrize("compressed", [False, True])
def test_objects_arrive_compressed_or_not_and_are_stored(tmp_path, compressed):
    import hashlib

    objects = [(b"a" * 5000, compressed), (os.urandom(3000), False), (b"tail" * 10, compressed)]
    proc = _raw_agent(tmp_path)
    keys = [hashlib.sha256(data).hexdigest() for data, _ in objects]
    _upload(proc, [(k, d, z) for k, (d, z) in zip(keys, objects, strict=False)])
    assert proc.stdout and proc.stdin
    header, _ = read_frame(proc.stdout)
    assert header == {"ok": True, "result": 3}
    rows = [["f", len(d), 0o644, k, None] for k, (d, _) in zip(keys, objects, strict=False)]
    write_frame(proc.stdin, {"op": "missing", "args": {"rows": rows}})
    assert read_frame(proc.stdout)[0]["result"] == []
    proc.stdin.close()
    proc.wait(10)


def test_an_unknown_operation_is_an_error_not_a_crash(tmp_path):
    proc = _raw_agent(tmp_path)
    assert proc.stdin and proc.stdout
    write_frame(proc.stdin, {"op": "format_disk", "args": {}})
    header, _ = read_frame(proc.stdout)
    assert header["ok"] is False and "unknown operation" in header["error"]
    write_frame(proc.stdin, {"op": "hello", "args": {}})
    assert read_frame(proc.stdout)[0]["ok"] is True
    proc.stdin.close()
    proc.wait(10)


def test_bundle_is_deterministic_and_versioned():
    agent_bundle.cache_clear()
    first = agent_bundle()
    agent_bundle.cache_clear()
    assert agent_bundle() == first
    assert first[0].startswith("1-")


def test_lost_agent_is_a_clear_error(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdout.write('garbage')"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout and proc.stdin
    with pytest.raises(AgentError, match="lost the connection to the agent"):
        StreamAgentClient(proc.stdout, proc.stdin)
    proc.wait(10)
