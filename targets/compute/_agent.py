"""The client side of the agent, and :class:`AgentTarget`, the base of every kind that
runs through it (local, SSH VMs, and plugins such as Slurm).

``AgentTarget`` implements the five primitives of the contract on top of an
:class:`AgentClient`; a kind only says how to reach its agent (:meth:`AgentTarget.connect_agent`)
and what to report at attach (``probe``). What crosses the wire is typed in
:mod:`targets.agent.protocol`. Public names: ``targets.compute.AgentTarget``,
``targets.compute.AgentClient`` (this module is private). This is invoke/fabric's
"partially-abstract core": the loop lives here, each kind fills in one method.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import struct
import warnings
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from stat import S_ISREG
from typing import IO, Any, TypedDict, cast

from targets._files import check_received_name, make_way, temporary_beside
from targets.agent import AGENT_VERSION, ops, rundir, store, supervisor
from targets.agent.protocol import (
    LAUNCH_EXTERNAL,
    QUEUED,
    DistributedPart,
    DockerCheck,
    ExternalCommand,
    Hello,
    ManifestRow,
    PythonsFound,
    RunSpec,
    StatusRecord,
    UploadMeta,
    manifest_rows,
    object_key,
)
from targets.agent.server import ChunkReader, _read_exact, write_chunks, write_frame
from targets.compute.base import (
    Capability,
    ComputeTarget,
    LogChunk,
    Progress,
    RunHandle,
    RunState,
    RunStatus,
    SubmitRequest,
    no_progress,
)
from targets.errors import TargetsError, UsageError

__all__ = [
    "AgentClient",
    "AgentError",
    "AgentHandleData",
    "AgentTarget",
    "LocalAgentClient",
    "StreamAgentClient",
    "agent_bundle",
    "agent_handle_data",
    "prepare_timeout",
    "run_spec",
    "state_from_status",
]

_U32 = struct.Struct(">I")
_UPLOAD_CHUNK = 1 << 18
# Bounds on what the client accepts from an agent: the real one sends headers of a few
# MB at most (a long list of output files), log payloads of 1 MiB and stream chunks of
# about 256 KiB. Anything beyond is a broken or hostile agent, refused before it is read.
_MAX_HEADER = 256 << 20
_MAX_PAYLOAD = 64 << 20
_MAX_CHUNK = 16 << 20
_MAX_FILE = 1 << 50


class AgentError(TargetsError):
    """The agent on the target refused or failed an operation."""


# -- the bundle shipped to remote targets ------------------------------------------------


@lru_cache(maxsize=1)
def agent_bundle() -> tuple[str, bytes]:
    """``(version, zipapp bytes)`` of the agent: ``targets/agent/*.py`` as the package
    ``targets_agent`` plus a ``__main__``. Deterministic, so the version (agent version
    plus content hash) changes exactly when the code does."""
    source = Path(__file__).resolve().parent.parent / "agent"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        # docker_sdk.py needs the `docker` package: only the local target uses it.
        # runlib/: the run library (`azureml` inside runs), put on the run's PYTHONPATH.
        shipped = [*source.glob("*.py"), *source.glob("runlib/**/*.py")]
        for path in sorted(p for p in shipped if p.name != "docker_sdk.py"):
            name = path.relative_to(source).as_posix()
            info = zipfile.ZipInfo(f"targets_agent/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
        main = zipfile.ZipInfo("__main__.py", date_time=(1980, 1, 1, 0, 0, 0))
        archive.writestr(
            main,
            "import sys\nfrom targets_agent.cli import main\nsys.exit(main(sys.argv[1:]))\n",
        )
    data = buffer.getvalue()
    return f"{AGENT_VERSION}-{hashlib.sha256(data).hexdigest()[:12]}", data


# -- clients ------------------------------------------------------------------------------


class AgentClient(ABC):
    """Operations on one target's agent. Implementations: in-process, or a byte stream."""

    root: str
    platform: str

    @abstractmethod
    def call(self, op: str, **args: Any) -> Any:
        """A simple request/response operation (see ``agent/server.py``)."""

    @abstractmethod
    def put(self, items: Sequence[tuple[str, Path, int]], progress: Progress) -> None:
        """Send objects ``(key, local file, size)`` to the target's store."""

    @abstractmethod
    def logs(self, run_id: str, offsets: Mapping[str, int]) -> list[LogChunk]: ...

    @abstractmethod
    def fetch(self, run_id: str, dest: Path) -> None:
        """Bring the run's new or changed ``outputs/`` and ``logs/`` files into ``dest``."""

    def wait(
        self, run_id: str, offsets: Mapping[str, int], known: str | None, timeout: float
    ) -> tuple[StatusRecord, list[LogChunk], bool] | None:
        """Block at most ``timeout`` s until the run has news (log bytes beyond
        ``offsets``, a status other than ``known``, its end): ``(status, new chunks,
        complete)``, ``complete`` when the chunks reach the end of every log. None: this
        client cannot wait (the default; the caller polls)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional
        pass

    # -- typed operations (what ``call`` does, with the protocol's shapes) ----------------

    def missing(self, rows: Sequence[ManifestRow], run_id: str | None = None) -> list[str]:
        """Store keys of ``rows`` the target lacks; with ``run_id`` the target keeps all of
        them for that run until it starts (garbage collection spares them)."""
        got = self.call("missing", rows=[list(r) for r in rows], run_id=run_id)
        if not isinstance(got, list) or not all(isinstance(k, str) for k in got):
            raise AgentError(f"the agent sent a bad reply: a 'missing' reply of {got!r:.200}")
        return got

    _upload: _Upload | None = None

    @contextlib.contextmanager
    def sending(
        self,
        sources: Mapping[str, tuple[str, Path, int]],
        progress: Progress,
        likely: Sequence[str] = (),
    ) -> Iterator[_Upload]:
        """Within this block, :meth:`start` and :meth:`start_external` first let the agent
        check its store: when objects are missing they are sent (from ``sources``: key ->
        ``(key, local file, size)``) and the run is started after them, without sending
        the manifest again. When nothing is missing: one round trip. ``likely``: keys
        sent before the check without asking (files that changed since the last snapshot;
        the caller keeps them few and small)."""
        upload = _Upload(sources, progress, list(likely))
        previous, self._upload = self._upload, upload
        try:
            yield upload
        finally:
            self._upload = previous

    def _start(
        self,
        run_id: str,
        rows: Sequence[ManifestRow],
        spec: RunSpec,
        python: str | None,
        launch: str | None,
    ) -> dict[str, Any]:
        args: dict[str, Any] = {"run_id": run_id, "spec": spec, "python": python}
        if launch is not None:
            args["launch"] = launch
        wire = [list(r) for r in rows]
        upload = self._upload
        if upload is None:
            return _mapping(self.call("start", rows=wire, **args), "start")
        if upload.likely:
            # New or changed small files first: then the start usually finds nothing
            # missing, and the store is checked (and the manifest kept) once, not twice.
            upload.send(self, upload.likely)
        got = _mapping(self.call("start", rows=wire, check=True, **args), "start")
        if "missing" in got:
            upload.send(self, _keys(got["missing"]))
            got = _mapping(self.call("start", rows=None, check=True, **args), "start")
            if "missing" in got:
                raise AgentError(
                    f"the target still lacks {len(_keys(got['missing']))} of the run's files "
                    "after they were sent; run again"
                )
        return got

    def start(
        self,
        run_id: str,
        rows: Sequence[ManifestRow],
        spec: RunSpec,
        python: str | None = None,
    ) -> StatusRecord:
        """Materialise the run folder, write ``spec.json`` and launch the supervisor
        detached; returns the run's first status. Inside :meth:`sending`, the objects the
        target lacks are sent first."""
        return cast(StatusRecord, self._start(run_id, rows, spec, python, None))

    def start_external(
        self,
        run_id: str,
        rows: Sequence[ManifestRow],
        spec: RunSpec,
        python: str | None = None,
    ) -> ExternalCommand:
        """As :meth:`start`, but start nothing: return the supervisor's command for a
        scheduler to run (the hook of kinds such as Slurm, see
        :meth:`AgentTarget.start_run`). ``python`` is the interpreter that runs it there."""
        got = self._start(run_id, rows, spec, python, LAUNCH_EXTERNAL)
        argv, env, run_dir = got.get("argv"), got.get("env"), got.get("run_dir")
        if (
            not isinstance(run_dir, str)
            or not isinstance(argv, list)
            or not all(isinstance(a, str) for a in argv)
            or not isinstance(env, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        ):
            raise AgentError(f"the agent sent a bad reply: a command of {got!r:.200}")
        return {"run_dir": run_dir, "argv": argv, "env": env}

    def status(self, run_id: str) -> StatusRecord:
        """The run's ``status.json``, judged by the agent (a run whose supervisor died is
        ended and reported Failed)."""
        return cast(StatusRecord, _mapping(self.call("status", run_id=run_id), "status"))

    def cancel(self, run_id: str) -> StatusRecord:
        """Ask the run to stop (idempotent); returns its status before the request."""
        return cast(StatusRecord, _mapping(self.call("cancel", run_id=run_id), "cancel"))

    def probe(self, python: str | None = None) -> dict[str, Any]:
        """Facts about the target (OS, Python, cores, Docker, GPUs, disk)."""
        return _mapping(self.call("probe", python=python), "probe")

    def pythons(self) -> PythonsFound:
        """The Python interpreters on the target (see :class:`PythonsFound`)."""
        return cast(PythonsFound, _mapping(self.call("pythons"), "pythons"))

    def docker_check(self, driver: str, gpu: bool) -> DockerCheck:
        """Is Docker (driven by ``driver``: ``cli`` or ``sdk``) usable there, with a GPU
        when ``gpu``?"""
        got = _mapping(self.call("docker_check", driver=driver, gpu=gpu), "docker_check")
        return cast(DockerCheck, got)

    def status_as_written(self, run_id: str) -> StatusRecord:
        """``status.json`` as the supervisor wrote it, its pid not judged: for runs whose
        supervisor a scheduler started elsewhere (the scheduler is asked whether the job
        lives)."""
        got = self.call("status_as_written", run_id=run_id)
        return cast(StatusRecord, _mapping(got, "status_as_written"))


class _Upload:
    """The objects a submit may have to send (see :meth:`AgentClient.sending`)."""

    def __init__(
        self,
        sources: Mapping[str, tuple[str, Path, int]],
        progress: Progress,
        likely: list[str] | None = None,
    ) -> None:
        self.sources = sources
        self.progress = progress
        self.likely = likely or []
        self.sent = 0

    def send(self, agent: AgentClient, keys: list[str]) -> None:
        unknown = [k for k in keys if k not in self.sources]
        if unknown:
            raise AgentError(
                f"the agent sent a bad reply: it asks for {unknown[0]!r:.100}, "
                "which is not a file of this run"
            )
        items = [self.sources[k] for k in dict.fromkeys(keys)]
        if items:
            agent.put(items, self.progress)
        self.sent += len(items)


def _keys(got: Any) -> list[str]:
    if not isinstance(got, list) or not all(isinstance(k, str) for k in got):
        raise AgentError(f"the agent sent a bad reply: a list of missing files of {got!r:.200}")
    return got


def _mapping(got: Any, op: str) -> dict[str, Any]:
    if not isinstance(got, dict):
        raise AgentError(f"the agent sent a bad reply: a {op!r} reply of {got!r:.200}")
    return got


@contextlib.contextmanager
def _refusals_as_agent_errors(*refusals: type[Exception]) -> Iterator[None]:
    """In-process agent calls fail as a remote agent's replies do: a refusal (``refusals``)
    or a full disk is an :class:`AgentError` with the agent's message."""
    try:
        yield
    except refusals as exc:
        raise AgentError(str(exc)) from exc
    except OSError as exc:
        full = store.no_space(exc)
        if full:
            raise AgentError(full) from exc
        raise


class LocalAgentClient(AgentClient):
    """The agent of this machine, called in-process."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.hello: Hello = ops.hello(self.root)
        self.platform = self.hello["platform"]

    def call(self, op: str, **args: Any) -> Any:
        table = ops.operations(self.root)
        if op == "status":
            supervisor.reap()
        with _refusals_as_agent_errors(ValueError, RuntimeError):
            return table[op](**args)

    def put(self, items: Sequence[tuple[str, Path, int]], progress: Progress) -> None:
        total = sum(size for _, _, size in items)
        done = 0
        for count, (key, path, size) in enumerate(items, 1):
            with _refusals_as_agent_errors(ValueError):
                store.put_file(self.root, key, str(path))
            done += size
            progress("upload-files", count, len(items))
            progress("upload", done, total)

    def logs(self, run_id: str, offsets: Mapping[str, int]) -> list[LogChunk]:
        chunks = rundir.read_logs(self.root, run_id, dict(offsets))
        return [LogChunk(c["name"], c["offset"], c["data"]) for c in chunks]

    def wait(
        self, run_id: str, offsets: Mapping[str, int], known: str | None, timeout: float
    ) -> tuple[StatusRecord, list[LogChunk], bool]:
        supervisor.reap()
        status, chunks = rundir.wait_news(self.root, run_id, dict(offsets), known, timeout)
        size = sum(len(c["data"]) for c in chunks)
        got = [LogChunk(c["name"], c["offset"], c["data"]) for c in chunks]
        return status, got, size < rundir.MAX_CHUNK

    def fetch(self, run_id: str, dest: Path) -> None:
        wd = Path(rundir.run_path(self.root, run_id)) / "wd"
        for top, inside in rundir.COLLECTED.items():
            _sync_tree(wd / inside, dest / top)


class StreamAgentClient(AgentClient):
    """An agent at the other end of a byte stream (an SSH channel, a pipe).

    ``reader``/``writer`` are file-like; the agent has already been started and its hello
    frame is read here.
    """

    def __init__(
        self, reader: IO[bytes], writer: IO[bytes], on_close: Callable[[], None] | None = None
    ) -> None:
        self._in = reader
        self._out = writer
        self._on_close = on_close
        self._broken = ""
        hello = self._response()
        if not isinstance(hello, dict):
            raise self._bad_reply(f"a hello of {hello!r:.200}")
        self.root = str(hello.get("root"))
        self.platform = str(hello.get("platform"))
        self.hello = cast(Hello, hello)

    def _bad_reply(self, what: str) -> AgentError:
        """The agent broke the protocol: this connection is not used again (what follows
        on the stream cannot be trusted to be in step)."""
        self._broken = f"the agent sent a bad reply: {what}"
        return AgentError(self._broken)

    def _response(self) -> Any:
        if self._broken:
            raise AgentError(self._broken)
        try:
            (length,) = _U32.unpack(_read_exact(self._in, 4))
            if length > _MAX_HEADER:
                # Also what a login script that prints text looks like.
                error = self._bad_reply(f"a reply header of {length} bytes")
                error.message = f"lost the connection to the agent: {error.message}"
                raise error
            header = json.loads(_read_exact(self._in, length).decode("utf-8"))
        except (EOFError, OSError, struct.error) as exc:
            raise AgentError(f"lost the connection to the agent: {exc}") from exc
        except (ValueError, RecursionError) as exc:
            raise self._bad_reply(f"a reply header that is not JSON ({exc})") from None
        if not isinstance(header, dict):
            raise self._bad_reply(f"a reply header that is a {type(header).__name__}")
        size = header.get("size") or 0
        if type(size) is not int or not 0 <= size <= _MAX_PAYLOAD:
            raise self._bad_reply(f"a payload size of {size!r}")
        try:
            payload = _read_exact(self._in, size) if size else b""
        except (EOFError, OSError) as exc:
            raise AgentError(f"lost the connection to the agent: {exc}") from exc
        if not header.get("ok"):
            said = header.get("error")
            text = said[:2000] if isinstance(said, str) else repr(said)[:200]
            raise AgentError(f"the agent on the target failed: {text}")
        if "result" not in header:
            raise self._bad_reply("a reply without a result")
        if payload:
            return header["result"], payload
        return header["result"]

    def _request(self, op: str, args: Mapping[str, Any]) -> None:
        if self._broken:
            raise AgentError(self._broken)
        try:
            write_frame(self._out, {"op": op, "args": dict(args)})
        except OSError as exc:
            raise AgentError(f"lost the connection to the agent: {exc}") from exc

    def call(self, op: str, **args: Any) -> Any:
        self._request(op, args)
        return self._response()

    def put(self, items: Sequence[tuple[str, Path, int]], progress: Progress) -> None:
        """Send the objects as one stream. What shrinks is compressed only when the link
        is slow (see :class:`_LinkRate`): on a fast one, deflating on this side and
        inflating on the target costs more time than the bytes it saves."""
        total = sum(size for _, _, size in items)
        link = _LinkRate()

        def chunks() -> Iterator[bytes]:
            done = 0
            for count, (key, path, size) in enumerate(items, 1):
                with open(path, "rb") as fh:
                    head = fh.read(min(size, _UPLOAD_CHUNK))
                    compress = link.slow() and _compresses(head)
                    upload: UploadMeta = {"key": key, "size": size, "z": compress}
                    meta = json.dumps(upload).encode()
                    yield _U32.pack(len(meta)) + meta
                    deflate = zlib.compressobj(1) if compress else None
                    data, left = head, size
                    while True:
                        if not data and left:
                            raise AgentError(f"{path} shrank while it was being sent; run again")
                        left -= len(data)
                        done += len(data)
                        yield deflate.compress(data) if deflate else data
                        if left <= 0:
                            break
                        data = fh.read(min(left, _UPLOAD_CHUNK))
                    if deflate is not None:
                        yield deflate.flush()
                progress("upload-files", count, len(items))
                progress("upload", done, total)
            end = json.dumps({"end": True}).encode()
            yield _U32.pack(len(end)) + end

        self._request("put", {})
        try:
            # Reading and compressing overlap with sending: zlib releases the GIL.
            write_chunks(self._out, link.timed(_prefetched(chunks())))
        except OSError as exc:
            raise AgentError(f"lost the connection to the agent: {exc}") from exc
        self._response()

    def logs(self, run_id: str, offsets: Mapping[str, int]) -> list[LogChunk]:
        """New log bytes since ``offsets``. The reply is checked, not trusted: each entry
        names a string and an offset and size that are non-negative integers, and the
        sizes add up to the payload (names and offsets against the run folder are checked
        where they are written, see :mod:`targets.runs`)."""
        got = self.call("logs", run_id=run_id, offsets=dict(offsets))
        meta, payload = got if isinstance(got, tuple) else (got, b"")
        return self._chunks(meta, payload, "logs")

    def wait(
        self, run_id: str, offsets: Mapping[str, int], known: str | None, timeout: float
    ) -> tuple[StatusRecord, list[LogChunk], bool]:
        """The agent's ``wait``: its reply is checked as a ``logs`` reply is."""
        deadline = getattr(self._in, "deadline", None)
        try:
            with deadline(timeout + _WAIT_GRACE) if deadline else contextlib.nullcontext():
                got = self.call(
                    "wait", run_id=run_id, offsets=dict(offsets), known=known, timeout=timeout
                )
        except BaseException as exc:
            if not isinstance(exc, AgentError):
                # Interrupted (Ctrl-C) while the reply was on its way: what follows on
                # the stream is out of step.
                self._broken = self._broken or "a wait for the agent's reply was interrupted"
            raise
        result, payload = got if isinstance(got, tuple) else (got, b"")
        if not isinstance(result, dict) or not isinstance(result.get("status"), dict):
            raise self._bad_reply(f"a 'wait' reply of {result!r:.200}")
        chunks = self._chunks(result.get("logs"), payload, "wait")
        return (
            cast(StatusRecord, result["status"]),
            chunks,
            result.get("complete") is True,
        )

    def _chunks(self, meta: Any, payload: bytes, op: str) -> list[LogChunk]:
        if not isinstance(meta, list) or len(meta) > 100_000:
            raise self._bad_reply(f"a {op!r} reply that is not a list of chunks: {meta!r:.200}")
        chunks, at = [], 0
        for item in meta:
            if not isinstance(item, dict):
                raise self._bad_reply(f"a log chunk that is not a mapping: {item!r:.200}")
            name, offset, size = item.get("name"), item.get("offset"), item.get("size")
            if not isinstance(name, str):
                raise self._bad_reply(f"a log name that is not a string: {name!r:.200}")
            if type(offset) is not int or offset < 0:
                raise self._bad_reply(f"the log {name!r:.200} with the offset {offset!r:.80}")
            if type(size) is not int or size < 0:
                raise self._bad_reply(f"the log {name!r:.200} with the size {size!r:.80}")
            if at + size > len(payload):
                raise self._bad_reply(
                    f"log chunks of more bytes than the {len(payload)} it sent ({name!r:.200})"
                )
            chunks.append(LogChunk(name, offset, payload[at : at + size]))
            at += size
        if at != len(payload):
            raise self._bad_reply(f"{len(payload) - at} bytes of log data no chunk names")
        return chunks

    def _have(self, dest: Path) -> dict[str, list[int]]:
        have: dict[str, list[int]] = {}
        for top in rundir.COLLECTED:
            base = dest / top
            if base.is_dir() and not base.is_symlink():
                for path in base.rglob("*"):
                    if path.is_file() and not path.is_symlink():
                        st = path.stat()
                        have[path.relative_to(dest).as_posix()] = [st.st_size, int(st.st_mtime)]
        return have

    def _file_list(self, files: Any) -> list[tuple[list[str], int, float]]:
        """The agent's list of files to send, checked: names under outputs/, logs/ or
        mlruns/, sizes and times numbers in range."""
        if not isinstance(files, list) or len(files) > 10_000_000:
            raise self._bad_reply(f"a 'fetch' reply that is not a list of files: {files!r:.200}")
        checked = []
        for entry in files:
            if not isinstance(entry, list) or len(entry) != 3:
                raise self._bad_reply(f"a file entry {entry!r:.200} (expected name, size, mtime)")
            name, size, mtime = entry
            problem = check_received_name(name, tuple(rundir.COLLECTED))
            if problem:
                raise self._bad_reply(f"a file to collect with {problem}")
            if type(size) is not int or not 0 <= size < _MAX_FILE:
                raise self._bad_reply(f"the file {name!r} with the size {size!r:.80}")
            if type(mtime) not in (int, float) or not math.isfinite(mtime) or not 0 <= mtime < 1e11:
                raise self._bad_reply(f"the file {name!r} with the time {mtime!r:.80}")
            checked.append((name.split("/"), size, float(mtime)))
        return checked

    def fetch(self, run_id: str, dest: Path) -> None:
        """Bring new or changed files into ``dest``. Each file is written to a temporary of
        its own in its folder and renamed into place, so a reader (or a second collecting
        process) never sees half a file. On a failure here (a full disk) the rest of the
        stream is read and dropped, so the connection stays usable, and the temporary is
        removed."""
        dest.mkdir(parents=True, exist_ok=True)
        self._request("fetch", {"run_id": run_id, "have": self._have(dest)})
        files = self._file_list(self._response())
        reader = _BoundedChunkReader(self._in, compressed=True)
        try:
            for parts, size, mtime in files:
                self._receive_file(reader, dest, parts, size, mtime)
            reader.drain()
        except AgentError:
            if not reader.done:
                self._broken = "the connection was left out of step by a failed collection"
            raise
        except (EOFError, struct.error) as exc:
            raise AgentError(f"lost the connection to the agent: {exc}") from exc
        except zlib.error as exc:
            raise self._bad_reply(f"a damaged output stream ({exc})") from None
        except Exception:
            # A local failure (a full disk): keep the connection in step, then report.
            try:
                reader.drain()
            except (EOFError, OSError, struct.error, zlib.error, AgentError):
                self._broken = "the connection was left out of step by a failed collection"
            raise

    def _receive_file(
        self, reader: ChunkReader, dest: Path, parts: list[str], size: int, mtime: float
    ) -> None:
        target = make_way(dest, parts)
        fd, tmp = temporary_beside(target)
        try:
            with os.fdopen(fd, "wb") as fh:
                left = size
                while left:
                    data = reader.read_some(min(left, _UPLOAD_CHUNK))
                    if not data:
                        raise AgentError("the output stream ended early")
                    fh.write(data)
                    left -= len(data)
            os.utime(tmp, (mtime, mtime))
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def close(self) -> None:
        if self._on_close is not None:
            callback, self._on_close = self._on_close, None
            callback()


_WAIT_GRACE = 15.0
"""How long past its own timeout a ``wait`` reply may take (a busy machine) before the
target counts as not answering (a frozen one): where the stream supports a deadline."""
_LIKELY_FILES = 16
_LIKELY_BYTES = 4 << 20
"""At most this many files, and bytes, that changed since the last snapshot (by the hash
cache) are sent before the target is asked what it lacks: an edit of a few files
then starts in two round trips instead of three. More is more likely a fresh clone or a
lost hash cache, whose files the target may well have: those ask first."""
_SLOW_LINK = 8 << 20
"""Bytes per second under which an upload compresses (about 67 Mbit/s, a WAN or VPN
link): above it, the CPU rather than the link sets the pace (a LAN, or an sshd on this
machine, where the measured rate also drops when the machine is busy), and deflating
here and inflating on the target (zlib level 1: some 100 MB/s of input per core, text
shrinking to about 40%) would cost more time than the bytes it saves."""
_JUDGED_AFTER = 1 << 20
"""The link is judged on the bytes it took so far, after this many (sent as they are; so
are those read ahead meanwhile, up to 4 MiB)."""


class _LinkRate:
    """How fast the stream's writer takes the upload: the bytes handed to it over the
    time it spent taking them (blocked in the SSH channel's send while its window is full,
    or in the shared connection's socket), not counting the time spent waiting for the
    files to be read. Read by the thread producing the stream (ints and floats: no lock)."""

    def __init__(self) -> None:
        self.sent = 0
        self.seconds = 0.0

    def slow(self) -> bool:
        return self.sent >= _JUDGED_AFTER and self.sent < _SLOW_LINK * self.seconds

    def timed(self, items: Iterator[bytes]) -> Iterator[bytes]:
        import time

        for item in items:
            start = time.perf_counter()
            yield item  # the writer sends it before it asks for the next one
            self.seconds += time.perf_counter() - start
            self.sent += len(item)


def _compresses(sample: bytes) -> bool:
    """Worth compressing: the first chunk shrinks by at least 10% at level 1. Already
    compressed data (archives, images, model weights) is sent as it is."""
    if len(sample) < 512:
        return False
    # 4 KiB tell as much as more: deflate is slow on data that does not compress.
    head = sample[:4096]
    return len(zlib.compress(head, 1)) < 0.9 * len(head)


def _prefetched(source: Iterator[bytes], depth: int = 16) -> Iterator[bytes]:
    """Run ``source`` in a thread, ``depth`` items ahead of the consumer."""
    import queue
    import threading

    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()
    failure: list[BaseException] = []
    stop = threading.Event()

    def batches() -> Iterator[bytes]:
        """Join small pieces: a queue hand-off per piece would cost more than the piece."""
        pending: list[bytes] = []
        size = 0
        for piece in source:
            pending.append(piece)
            size += len(piece)
            if size >= _UPLOAD_CHUNK:
                yield b"".join(pending)
                pending, size = [], 0
        if pending:
            yield b"".join(pending)

    def produce() -> None:
        try:
            for item in batches():
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:
            failure.append(exc)
        while not stop.is_set():
            try:
                items.put(done, timeout=0.1)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                break
            yield item
    finally:
        stop.set()
        thread.join(5)
    if failure:
        raise failure[0]


class _BoundedChunkReader(ChunkReader):
    """A :class:`ChunkReader` for streams from an agent: a chunk longer than
    ``_MAX_CHUNK`` is refused before it is read, and a compressed chunk is inflated at
    most ``_MAX_CHUNK`` bytes at a time (no zlib bomb)."""

    def _more(self) -> bool:
        while not self.done:
            if self.inflate is not None and self.inflate.unconsumed_tail:
                data = self.inflate.decompress(self.inflate.unconsumed_tail, _MAX_CHUNK)
            else:
                (length,) = _U32.unpack(_read_exact(self.stream, 4))
                if length > _MAX_CHUNK:
                    raise AgentError(
                        f"the agent sent a bad reply: a stream chunk of {length} bytes"
                    )
                if length == 0:
                    self.done = True
                    if self.inflate is not None:
                        self._append(self.inflate.flush())
                    return self._available() > 0
                data = _read_exact(self.stream, length)
                if self.inflate is not None:
                    data = self.inflate.decompress(data, _MAX_CHUNK)
            if data:
                self._append(data)
                return True
        return False


def _sync_tree(src: Path, dest: Path) -> None:
    """Bring new or changed files of ``src`` into ``dest`` (by size and mtime).

    A file that became a folder in ``src`` (or the other way round) replaces what was
    collected before. Each file goes to a temporary of its own beside its destination and
    is renamed into place; a failure (a full disk) removes the temporary and raises.

    Design choice: files are hard-linked where possible, so a large model written to
    ``./outputs`` does not take its disk space twice on this machine."""
    if not src.is_dir():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    for dirpath, _dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        for name in filenames:
            s = Path(dirpath) / name
            d = dest / rel / name
            try:
                st = s.stat()
                with contextlib.suppress(OSError):
                    dt = os.lstat(d)
                    if (
                        S_ISREG(dt.st_mode)
                        and dt.st_size == st.st_size
                        and int(dt.st_mtime) == int(st.st_mtime)
                    ):
                        continue
                d = make_way(dest.parent, [dest.name, *rel.parts, name])
                _link_or_copy(s, d)
            except FileNotFoundError:
                continue  # removed by the script meanwhile


def _link_or_copy(source: Path, dest: Path) -> None:
    fd, tmp = temporary_beside(dest)
    try:
        os.close(fd)
        try:
            os.unlink(tmp)
            os.link(source, tmp)
        except OSError:
            shutil.copy2(source, tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- the partially-abstract target ---------------------------------------------------------


def state_from_status(raw: Mapping[str, Any]) -> RunState:
    """Translate the agent's ``status.json`` into a :class:`RunState`."""
    if not isinstance(raw, Mapping):
        raise AgentError(
            f"the agent sent a bad reply: a status that is not a mapping: {raw!r:.200}"
        )
    name = raw.get("status", QUEUED)
    try:
        status = RunStatus(name)
    except (ValueError, TypeError):
        status = RunStatus.FAILED
    message = raw.get("message")
    exit_code = raw.get("exit_code")
    phases = raw.get("phases")
    return RunState(
        status=status,
        exit_code=exit_code if type(exit_code) is int else None,
        message=(str(message)[:4000] if message else None)
        or (None if status.value == name else f"status {str(name)[:80]!r}"),
        phases={
            str(k)[:80]: float(v)
            for k, v in (phases.items() if isinstance(phases, Mapping) else ())
            if type(v) in (int, float) and math.isfinite(v)
        },
        started_at=_time_or_none(raw.get("running_at")),
        ended_at=_time_or_none(raw.get("ended_at")),
    )


def _time_or_none(value: Any) -> float | None:
    ok = type(value) in (int, float) and math.isfinite(value)
    return float(value) if ok else None


def _local_uv() -> str | None:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


class AgentHandleData(TypedDict, total=False):
    """The ``data`` of a handle made by :class:`AgentTarget` (see :func:`agent_handle_data`).
    Every key may be missing in a handle an older version wrote."""

    root: str
    """The agent's root on the target."""
    uploaded: int
    """Files sent for the run."""
    python: dict[str, Any]
    """The user's interpreter of a local user-managed run."""
    job_id: str
    """A scheduler's job id (kinds whose :meth:`AgentTarget.start_run` hands the run to a
    scheduler, e.g. Slurm)."""
    run_dir: str
    """The run's folder on the target (ditto)."""


_HANDLE_TYPES: dict[str, type | tuple[type, ...]] = {
    "root": str,
    "uploaded": int,
    "python": dict,
    "job_id": (str, int),
    "run_dir": str,
}


def agent_handle_data(handle: RunHandle) -> AgentHandleData:
    """The typed view of ``handle.data`` for the agent's kinds: known keys of the right
    type (a job id written as a number becomes a string); others are left out, so a
    handle from an older ``run.json`` or ``runs.db`` row loads whatever it holds."""
    typed: dict[str, Any] = {}
    for key, kind in _HANDLE_TYPES.items():
        value = handle.data.get(key)
        if isinstance(value, kind) and not isinstance(value, bool):
            typed[key] = str(value) if key == "job_id" else value
    return cast(AgentHandleData, typed)


class AgentTarget(ComputeTarget):
    """A kind whose work on the target is done by the agent. Subclasses implement
    :meth:`connect_agent`; the connection is opened lazily and kept until :meth:`close`."""

    #: The interpreter user-managed runs use when the runconfig names none (None: the
    #: agent's own interpreter).
    default_python: str | None = None

    _agent: AgentClient | None = None

    def connect_agent(self) -> AgentClient:
        """Reach the agent (starting or installing it as needed): the hook every kind
        built on ``AgentTarget`` implements. Called once, by :meth:`agent`, when the first
        operation needs the connection."""
        if type(self)._connect_agent is not AgentTarget._connect_agent:
            warnings.warn(
                f"{type(self).__name__}._connect_agent is deprecated: rename it connect_agent",
                DeprecationWarning,
                stacklevel=2,
            )
            return self._connect_agent()
        raise NotImplementedError(f"{type(self).__name__} must implement connect_agent()")

    def _connect_agent(self) -> AgentClient:
        """Deprecated name of :meth:`connect_agent`, still honoured for one release."""
        raise NotImplementedError(f"{type(self).__name__} must implement connect_agent()")

    def agent(self) -> AgentClient:
        """The connection to the target's agent (opened on first use)."""
        if self._agent is None:
            self._agent = self.connect_agent()
        return self._agent

    def close(self) -> None:
        if self._agent is not None:
            agent, self._agent = self._agent, None
            agent.close()

    # -- submit --------------------------------------------------------------------------

    def _uv_on_target(self, agent: AgentClient, progress: Progress) -> str | None:
        """uv for building environments on the target: the target's own, else ours,
        installed under the agent's root when the platforms match."""
        found = agent.call("which_tool", name="uv")
        if found:
            return str(found)
        mine = _local_uv()
        if mine is None or agent.platform != _this_platform():
            return None
        path = Path(mine)
        data = path.read_bytes()
        row = ManifestRow("uv", len(data), 0o755, hashlib.sha256(data).hexdigest(), None)
        key = object_key(row.digest, executable=True)
        if agent.missing([row]):
            agent.put([(key, path, len(data))], progress)
        return str(agent.call("install_tool", name="uv", key=key))

    #: How the agent drives Docker on this kind: "cli" (the docker command) or "sdk".
    docker_driver: str = "cli"

    def submit(self, request: SubmitRequest, progress: Progress = no_progress) -> RunHandle:
        if request.config.framework == "pyspark" and Capability.SPARK not in self.capabilities:
            raise UsageError(
                f"target {self.name!r} ({self.kind}) does not run Spark jobs",
                hint="run framework: pyspark on a Spark head node (targets attach NAME "
                "--type hdinsight ...), on Databricks, or on the local target",
            )
        agent = self.agent()
        if request.environment.docker is not None:
            # Before anything is uploaded: is Docker (and a GPU, when asked for) usable?
            gpu = request.config.environment.docker.gpu
            found = agent.docker_check(self.docker_driver, gpu)
            if not found.get("ok"):
                raise UsageError(
                    f"target {self.name!r} cannot run this Docker environment: "
                    f"{found.get('error')}",
                    hint="install Docker there (and add your user to the docker group), or "
                    "set environment.docker.enabled: false",
                )
            registry = (request.environment.docker or {}).get("registry")
            if registry and request.environment.docker.get("base_image"):
                # The password travels in this request only: never in a file on the target.
                agent.call(
                    "docker_pull",
                    driver=self.docker_driver,
                    image=request.environment.docker["base_image"],
                    env_hash=request.environment.hash,
                    auth=self._registry_auth(registry),
                )
        snapshot = request.snapshot
        rows = manifest_rows(snapshot.to_manifest()["files"])
        sources: dict[str, tuple[str, Path, int]] = {}
        likely: dict[str, int] = {}
        for row in rows:
            if row.link is None and row.key not in sources:
                sources[row.key] = (row.key, snapshot.source(row.path), row.size)
                if row.path in snapshot.changed_paths:
                    likely[row.key] = row.size
        if len(likely) > _LIKELY_FILES or sum(likely.values()) > _LIKELY_BYTES:
            likely = {}  # a fresh clone or a new hash cache, not an edit: ask first
        uv = None
        if request.environment.managed:
            uv = self._uv_on_target(agent, progress)
        spec = run_spec(request, default_python=self.default_python, uv=uv)
        spec["docker_driver"] = self.docker_driver
        # The start checks the store first (and claims the run's objects until it has
        # linked them, see agent/storage.py); what is missing is sent, then it starts.
        with agent.sending(sources, progress, list(likely)) as upload:
            started = self.start_run(agent, request, rows, spec)
        return RunHandle(
            kind=self.kind,
            target=self.name,
            run_id=request.run_id,
            data={**started, "root": agent.root, "uploaded": upload.sent},
        )

    def start_run(
        self,
        agent: AgentClient,
        request: SubmitRequest,
        rows: Sequence[ManifestRow],
        spec: RunSpec,
    ) -> AgentHandleData:
        """Start the run whose files are now in the target's store; return what the
        handle's ``data`` should keep (JSON-able). Called by :meth:`submit` after upload.

        The default asks the agent to launch the supervisor detached
        (:meth:`AgentClient.start`). A kind whose runs are started by a scheduler
        overrides it: :meth:`AgentClient.start_external` prepares the run folder the same
        way but returns the supervisor's command (an
        :class:`~targets.agent.protocol.ExternalCommand`) instead of starting it, and the
        kind hands that command to its scheduler. ``spec`` may be changed first (e.g. the
        entry wrapped in a launcher)."""
        agent.start(request.run_id, rows, spec)
        return {}

    def _registry_auth(self, registry: Mapping[str, Any]) -> dict[str, str]:
        address, username = registry.get("address"), registry.get("username")
        if not username:
            raise UsageError(
                f"base_image_registry {address!r} has no username",
                hint="set environment.docker.base_image_registry.username",
            )
        password = self.context.secret(f"registry:{address}|{username}")
        if not password:
            raise UsageError(
                f"no password stored for {username}@{address}",
                hint=f"targets registry login {address} --username {username} --password-stdin",
            )
        return {"address": str(address), "username": str(username), "password": password}

    # -- the rest of the contract ----------------------------------------------------------

    def status(self, handle: RunHandle) -> RunState:
        return state_from_status(self.agent().status(handle.run_id))

    def read_logs(self, handle: RunHandle, offsets: Mapping[str, int]) -> list[LogChunk]:
        ended = self._ended_logs.get(handle.run_id)
        if ended is not None and dict(offsets) == ended:
            # The agent said the run ended and its logs end exactly there: no round trip.
            return []
        return self.agent().logs(handle.run_id, offsets)

    @property
    def _ended_logs(self) -> dict[str, dict[str, int]]:
        """Run id -> the offsets at which an ended run's logs are complete, as its last
        ``wait`` answered (what the collection's last ``read_logs`` would ask)."""
        found: dict[str, dict[str, int]] | None = self.__dict__.get("_ended_logs_")
        if found is None:
            found = self.__dict__["_ended_logs_"] = {}
        return found

    def wait_news(
        self, handle: RunHandle, offsets: Mapping[str, int], known: str | None, timeout: float
    ) -> tuple[RunState, list[LogChunk]] | None:
        """The agent's ``wait``. None for a kind that judges a run's status its own way
        (e.g. asking a scheduler): its followers poll :meth:`status`."""
        own = type(self)
        if own.status is not AgentTarget.status or own.read_logs is not AgentTarget.read_logs:
            return None
        got = self.agent().wait(handle.run_id, offsets, known, timeout)
        if got is None:
            return None
        raw, chunks, complete = got
        state = state_from_status(raw)
        if state.status.terminal and complete:
            ends = dict(offsets)
            for chunk in chunks:
                ends[chunk.name] = chunk.offset + len(chunk.data)
            self._ended_logs[handle.run_id] = ends
        return state, chunks

    def fetch_outputs(self, handle: RunHandle, dest: Path) -> None:
        self.agent().fetch(handle.run_id, dest)

    def cancel(self, handle: RunHandle) -> None:
        self.agent().cancel(handle.run_id)

    def discard(self, handle: RunHandle) -> None:
        self.agent().call("discard", run_id=handle.run_id)

    def mark_collected(self, handle: RunHandle) -> None:
        self.agent().call("collected", run_id=handle.run_id)

    def collect_garbage(
        self,
        *,
        collected: Sequence[str] = (),
        keep_days: float | None = None,
        max_size: int | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        return dict(
            self.agent().call(
                "storage_gc",
                collected=list(collected),
                keep_days=keep_days,
                max_size=max_size,
                dry_run=dry_run,
            )
        )

    def set_storage_cap(self, cap_bytes: int | None) -> int | None:
        got = self.agent().call("storage_cap", cap_bytes=cap_bytes)["cap_bytes"]
        return None if got is None else int(got)

    def environments(self) -> list[dict[str, Any]]:
        return list(self.agent().call("envs_list", driver=self.docker_driver))

    def prunable_environments(
        self, *, older_than_seconds: float | None = None
    ) -> list[dict[str, Any]]:
        return list(
            self.agent().call(
                "envs_prune_plan", older_than_seconds=older_than_seconds, driver=self.docker_driver
            )
        )

    def prune_environments(
        self, *, older_than_seconds: float | None = None, only: Sequence[str] | None = None
    ) -> list[str]:
        return list(
            self.agent().call(
                "envs_prune",
                older_than_seconds=older_than_seconds,
                driver=self.docker_driver,
                only=None if only is None else list(only),
            )
        )


def run_spec(request: SubmitRequest, *, default_python: str | None, uv: str | None) -> RunSpec:
    """The ``spec.json`` the supervisor reads: what to run, in which environment."""
    config = request.config
    return {
        "run_id": request.run_id,
        "experiment": request.experiment,
        "entry": request.entry(),
        "environment": dict(request.environment.to_json(), hash=request.environment.hash),
        "environment_variables": request.environment_variables(),
        "max_run_duration_seconds": config.max_run_duration_seconds,
        "framework": config.framework,
        "spark": {
            "configuration": dict(config.spark.configuration),
            "packages": [p.coordinate for p in config.environment.spark.packages],
            "repositories": list(config.environment.spark.repositories),
            "deploy_mode": config.hdi.yarn_deploy_mode,
        },
        "default_python": default_python,
        "uv": uv,
        "prepare_timeout_seconds": prepare_timeout(),
        "docker_run": {
            "shm_size": config.environment.docker.shm_size,
            "arguments": list(config.environment.docker.arguments),
            "gpu": config.environment.docker.gpu,
        },
        "distributed": _distributed(request.distributed),
    }


def _distributed(part: DistributedPart | None) -> DistributedPart | None:
    return cast(DistributedPart, dict(part)) if part else None


def prepare_timeout() -> float:
    """Seconds environment preparation may take: ``TARGETS_PREPARE_TIMEOUT``, else 1 hour."""
    raw = os.environ.get("TARGETS_PREPARE_TIMEOUT", "3600")
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"TARGETS_PREPARE_TIMEOUT={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise UsageError(f"TARGETS_PREPARE_TIMEOUT={raw!r} must be positive")
    return value


def _this_platform() -> str:
    import platform

    return f"{platform.system().lower()}-{platform.machine().lower()}"
