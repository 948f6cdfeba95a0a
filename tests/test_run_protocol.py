"""The run protocol: a follower is answered when a run has news (no poll interval), a
start takes one round trip when the target has every file, and the manifest crosses the
wire once.

Real agents only: the local target's (in-process) and the shipped zipapp spoken to over
a pipe (the program and protocol of the SSH kinds, see tests/test_agent_protocol.py).
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from targets.agent.server import read_frame, write_frame
from targets.compute._agent import AgentTarget
from targets.compute.base import RunHandle
from targets.compute.local import LocalTarget
from targets.testing import make_request
from tests.test_agent_protocol import PipeOptions, PipeTarget, _raw_agent, _upload


class _Recorder:
    """The client's end of the pipe, noting each request frame (op and args) it carries."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def write(self, data: bytes) -> int:
        if data[4:11] == b'{"op": ':
            (length,) = struct.unpack(">I", data[:4])
            header = json.loads(data[4 : 4 + length])
            self.requests.append((header["op"], header.get("args") or {}))
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.raw.close()

    @property
    def ops(self) -> list[str]:
        return [op for op, _ in self.requests]


class RecordedPipeTarget(PipeTarget):
    """The pipe kind, with the requests it sends recorded."""

    recorder: _Recorder | None = None

    def writer(self, stdin: IO[bytes]) -> IO[bytes]:
        self.recorder = _Recorder(stdin)
        return self.recorder  # type: ignore[return-value]


@pytest.fixture(params=["local", "pipe"])
def target(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AgentTarget]:
    made: AgentTarget
    if request.param == "local":
        monkeypatch.setenv("TARGETS_HOME", str(tmp_path / "home"))
        made = LocalTarget("local")
    else:
        made = RecordedPipeTarget("pipe", PipeOptions(root=str(tmp_path / "remote-root")))
    with made:
        yield made


def _project(tmp_path: Path, code: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "main.py").write_text(code)
    return src


def _follow(
    target: AgentTarget, handle: RunHandle, offsets: dict[str, int], known: str
) -> list[tuple[str, bytes]]:
    """Call wait_news until the run ends: ``[(status, driver.log so far)]`` per answer."""
    answers: list[tuple[str, bytes]] = []
    seen = bytearray()
    deadline = time.monotonic() + 120
    while True:
        got = target.wait_news(handle, offsets, known, 1.0)
        assert got is not None, "the agent's kinds wait for news"
        state, chunks = got
        for chunk in chunks:
            assert chunk.offset == offsets.get(chunk.name, 0)
            offsets[chunk.name] = chunk.offset + len(chunk.data)
            if chunk.name == "driver.log":
                seen += chunk.data
        answers.append((state.status.value, bytes(seen)))
        known = state.status.value
        if state.status.terminal:
            return answers
        assert time.monotonic() < deadline, f"run still {known}"


def test_wait_news_answers_with_each_output_and_with_the_end(target, tmp_path):
    src = _project(
        tmp_path,
        "import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('second')\n",
    )
    handle = target.submit(make_request(src))
    offsets: dict[str, int] = {}
    answers = _follow(target, handle, offsets, "Queued")
    status, output = answers[-1]
    # The end is reported with the logs complete.
    assert status == "Completed" and output == b"first\nsecond\n"
    # The first line came while the run was still going, in an answer of its own.
    assert any(s == "Running" and out == b"first\n" for s, out in answers)
    # An ended run is answered at once, with nothing new.
    got = target.wait_news(handle, offsets, "Completed", 1.0)
    assert got is not None
    assert got[0].status.value == "Completed" and got[1] == []
    # Collecting after that asks for nothing more (the end came with complete logs).
    assert target.read_logs(handle, offsets) == []


def test_wait_news_times_out_on_a_quiet_run(target, tmp_path):
    src = _project(tmp_path, "import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    handle = target.submit(make_request(src))
    try:
        offsets: dict[str, int] = {}
        known = "Queued"
        while offsets.get("driver.log", 0) < 3:
            got = target.wait_news(handle, offsets, known, 1.0)
            assert got is not None
            known = got[0].status.value
            for chunk in got[1]:
                offsets[chunk.name] = chunk.offset + len(chunk.data)
        got = target.wait_news(handle, offsets, "Running", 0.2)
        assert got is not None
        assert got[0].status.value == "Running" and got[1] == []
    finally:
        target.cancel(handle)
    answers = _follow(target, handle, offsets, "Running")
    assert answers[-1][0] == "Canceled"


def test_a_start_is_one_request_and_the_manifest_is_sent_once(tmp_path):
    src = _project(tmp_path, "print('hi')\n")
    (src / "data.txt").write_text("some data\n" * 50)
    with RecordedPipeTarget("pipe", PipeOptions(root=str(tmp_path / "remote-root"))) as target:
        first = target.submit(make_request(src))
        recorder = target.recorder
        assert recorder is not None
        assert first.data["uploaded"] == 2
        assert [op for op in recorder.ops if op != "hello"] == ["start", "put", "start"]
        starts = [args for op, args in recorder.requests if op == "start"]
        assert len(starts[0]["rows"]) == 2 and starts[1]["rows"] is None
        _follow(target, first, {}, "Queued")

        recorder.requests.clear()
        second = target.submit(make_request(src))
        assert second.data["uploaded"] == 0
        assert recorder.ops == ["start"]
        recorder.requests.clear()
        answers = _follow(target, second, {}, "Queued")
        assert answers[-1] == ("Completed", b"hi\n")
        assert set(recorder.ops) == {"wait"}


def test_a_checking_start_claims_what_it_waits_for(tmp_path):
    """``start`` with ``check`` answers what is missing and starts nothing; the objects
    it names stay claimed (a garbage collection between the upload and the start keeps
    them); the second start needs no rows."""
    src = _project(tmp_path, "print('claimed')\n")
    request = make_request(src)
    from targets.agent.protocol import manifest_rows
    from targets.compute._agent import run_spec

    rows = [list(r) for r in manifest_rows(request.snapshot.to_manifest()["files"])]
    spec = run_spec(request, default_python=sys.executable, uv=None)
    data = (src / "main.py").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    root = tmp_path / "r"
    proc = _raw_agent(tmp_path)
    assert proc.stdin and proc.stdout

    def call(op: str, **args: Any) -> Any:
        assert proc.stdin and proc.stdout
        write_frame(proc.stdin, {"op": op, "args": args})
        header, _payload = read_frame(proc.stdout)
        assert header["ok"], header
        return header["result"]

    run_id = request.run_id
    assert call("start", run_id=run_id, rows=rows, spec=spec, check=True) == {"missing": [digest]}
    assert not (root / "runs" / run_id).exists()
    _upload(proc, [(digest, data, False)])
    assert read_frame(proc.stdout)[0]["result"] == 1
    call("storage_gc")  # the object is linked by nothing yet: only the claim keeps it
    started = call("start", run_id=run_id, rows=None, spec=spec, check=True)
    assert "missing" not in started and started["status"]
    assert not (root / "claims" / run_id).exists()
    assert not list((root / "pending").glob("*"))
    known = ""
    while True:
        got = call("wait", run_id=run_id, offsets={}, known=known, timeout=1)
        known = got["status"]["status"]
        if known in ("Completed", "Failed", "Canceled"):
            break
    assert known == "Completed"
    assert (root / "runs" / run_id / "driver.log").read_bytes() == b"claimed\n"
    # Without kept rows a start without rows is refused, clearly.
    write_frame(
        proc.stdin, {"op": "start", "args": {"run_id": "other", "rows": None, "spec": spec}}
    )
    header, _ = read_frame(proc.stdout)
    assert header["ok"] is False and "no manifest is kept" in header["error"]
    proc.stdin.close()
    proc.wait(10)


def test_a_remote_supervisor_imports_from_bytecode_not_the_zipapp(tmp_path):
    """Python compiles what it imports from a zip at every start: the supervisor runs
    from the zipapp's files unpacked once beside it, where its bytecode is cached."""
    src = _project(tmp_path, "print('unpacked')\n")
    with RecordedPipeTarget("pipe", PipeOptions(root=str(tmp_path / "remote-root"))) as target:
        for _ in range(2):
            handle = target.submit(make_request(src))
            assert _follow(target, handle, {}, "Queued")[-1] == ("Completed", b"unpacked\n")
    (unpacked,) = tmp_path.glob(".agent-*.pyz-*.unpacked")
    assert list((unpacked / "targets_agent" / "__pycache__").glob("supervisor.*.pyc"))
    assert (unpacked / "targets_agent" / "runlib").is_dir()


def test_an_edited_file_is_sent_before_the_start_in_two_requests(tmp_path):
    """With the hash cache a submit uses, the files it had to read anew (an edit) are sent
    ahead of the start, which then finds nothing missing: two requests instead of three.
    An unchanged project sends nothing, even where files were just rewritten as they were."""
    import dataclasses
    import os

    from targets.snapshot import take_snapshot

    src = _project(tmp_path, "print(open('data.txt').read().strip())\n")
    data = src / "data.txt"
    data.write_text("first\n")
    (src / "other.txt").write_text("unchanged\n")
    cache = tmp_path / "hash-cache.db"
    old = time.time() - 60

    def age() -> None:
        for path in src.iterdir():  # older than the cache's "racily clean" window
            os.utime(path, (old, old))

    def submit() -> RunHandle:
        request = make_request(src)
        snapshot = take_snapshot(src, cache_path=cache)
        return target.submit(dataclasses.replace(request, snapshot=snapshot))

    with RecordedPipeTarget("pipe", PipeOptions(root=str(tmp_path / "remote-root"))) as target:
        age()
        first = submit()  # a new cache: its three files are read, and they are few
        recorder = target.recorder
        assert recorder is not None
        assert first.data["uploaded"] == 3
        assert [op for op in recorder.ops if op != "hello"] == ["put", "start"]
        _follow(target, first, {}, "Queued")

        recorder.requests.clear()
        unchanged = submit()
        assert unchanged.data["uploaded"] == 0 and recorder.ops == ["start"]
        _follow(target, unchanged, {}, "Queued")

        # Written just now (racily clean, so hashed at every snapshot) but unchanged:
        # known to the cache by its content, not sent again.
        (src / "other.txt").write_text("unchanged\n")
        recorder.requests.clear()
        fresh = submit()
        assert fresh.data["uploaded"] == 0 and recorder.ops == ["start"]
        _follow(target, fresh, {}, "Queued")

        recorder.requests.clear()
        data.write_text("second\n")
        os.utime(data, (old + 1, old + 1))
        edited = submit()
        assert edited.data["uploaded"] == 1
        assert recorder.ops == ["put", "start"]
        answers = _follow(target, edited, {}, "Queued")
        assert answers[-1] == ("Completed", b"second\n")
