"""The agent's request loop over stdin/stdout (target side), and the wire format.

Stdlib only, Python >= 3.8. The client starts ``python3 agent.pyz serve`` over one SSH
session channel and sends requests; each gets one response. Frames:

    frame  := u32 big-endian length of HEADER | HEADER (UTF-8 JSON) | PAYLOAD
    PAYLOAD is present when HEADER has "size": that many raw bytes.

Bulk data (uploads, collected outputs) travels as a *stream* after its header: chunks
``u32 length | bytes`` ended by a zero length. In an upload stream each object is
``u32 length | {"key", "size", "z"} | data``, where the data is one zlib stream when
``"z"`` is true (the client compresses what shrinks, and sends the rest as it is), and
``{"end": true}`` ends it. Collected outputs come back as one zlib stream. Every object is
checked against its size and digest before it is stored, so a corrupt or interrupted
transfer never becomes a valid object.

Responses carry ``"ok": true`` or ``"ok": false`` with ``"error"`` (a message for the user)
and ``"kind"`` (``user`` for bad input, ``internal`` for a bug).

Starting a run takes one round trip when the target has every file: ``start`` with
``"check": true`` and the manifest ``rows`` claims the run's objects and starts it, or
answers ``{"missing": [keys]}`` and starts nothing, keeping the rows; the client sends
those objects (``put``) and asks ``start`` again with ``"rows": null``. (``missing``, then
``start`` with the rows and without ``check``, is the older two-trip form, still
answered.)

Following a run: ``wait`` (``run_id``, ``offsets``, ``known``, ``timeout``) answers as
soon as the run has news -- log bytes beyond ``offsets``, a status other than ``known``,
its end -- or after ``timeout`` seconds (at most a few): ``{"status", "logs",
"complete"}`` with the log bytes in the payload, as ``logs`` sends them. The status is
read before the logs, so the logs of an ended run are complete; ``complete`` says no
size cap cut them short. ``collected`` is answered as soon as the marker is written; the
storage cap is applied after the reply.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import sys
import traceback
import zlib
from typing import IO, Any

from . import AGENT_VERSION, ops, rundir, storage, store
from .protocol import LogChunkMeta, UploadMeta, WaitReply, check_object_key, parse_object_key

__all__ = ["ChunkReader", "read_frame", "serve", "write_chunks", "write_frame"]

_U32 = struct.Struct(">I")
CHUNK = 1 << 18


class ProtocolError(Exception):
    pass


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    parts = []
    while n:
        data = stream.read(n)
        if not data:
            raise EOFError("connection closed")
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def read_frame(stream: IO[bytes]) -> tuple[dict[str, Any], bytes]:
    (length,) = _U32.unpack(_read_exact(stream, 4))
    header = json.loads(_read_exact(stream, length).decode("utf-8"))
    payload = _read_exact(stream, int(header["size"])) if header.get("size") else b""
    return header, payload


def write_frame(stream: IO[bytes], header: dict[str, Any], payload: bytes = b"") -> None:
    if payload:
        header = dict(header, size=len(payload))
    data = json.dumps(header).encode("utf-8")
    stream.write(_U32.pack(len(data)) + data + payload)
    stream.flush()


def write_chunks(stream: IO[bytes], chunks: Any) -> None:
    """Write an iterable of byte chunks as a chunk stream (ended by a zero length)."""
    for chunk in chunks:
        if chunk:
            stream.write(_U32.pack(len(chunk)) + chunk)  # one write: one SSH packet run
    stream.write(_U32.pack(0))
    stream.flush()


class ChunkReader:
    """Reads a chunk stream as one byte stream, optionally through zlib.

    The unread bytes are ``buffer[pos:]``: reading advances ``pos`` instead of copying
    the rest of the buffer, which would cost a copy of up to a chunk per small read.
    """

    def __init__(self, stream: IO[bytes], compressed: bool = False) -> None:
        self.stream = stream
        self.buffer = b""
        self.pos = 0
        self.done = False
        self.inflate = zlib.decompressobj() if compressed else None

    def _available(self) -> int:
        return len(self.buffer) - self.pos

    def _append(self, data: bytes) -> None:
        self.buffer = self.buffer[self.pos :] + data if self.pos < len(self.buffer) else data
        self.pos = 0

    def _more(self) -> bool:
        while not self.done:
            (length,) = _U32.unpack(_read_exact(self.stream, 4))
            if length == 0:
                self.done = True
                if self.inflate is not None:
                    self._append(self.inflate.flush())
                return self._available() > 0
            data = _read_exact(self.stream, length)
            if self.inflate is not None:
                data = self.inflate.decompress(data)
            if data:
                self._append(data)
                return True
        return False

    def read_exact(self, n: int) -> bytes:
        while self._available() < n:
            if not self._more():
                raise EOFError("stream ended early")
        data = self.buffer[self.pos : self.pos + n]
        self.pos += n
        return data

    def unread(self, data: bytes) -> None:
        """Put bytes read too far back in front of the stream."""
        if data:
            self.buffer = data + self.buffer[self.pos :]
            self.pos = 0

    def read_some(self, limit: int) -> bytes:
        if self._available() == 0 and not self._more():
            return b""
        data = self.buffer[self.pos : self.pos + limit]
        self.pos += len(data)
        return data

    def drain(self) -> None:
        while not self.done:
            self._more()
            self.buffer, self.pos = b"", 0


def _receive_objects(root: str, reader: ChunkReader) -> int:
    """Store every object of an upload stream; returns how many were stored.

    Each object is ``u32 length | {"key", "size", "z"} | data``; with ``"z"`` the data is
    one zlib stream (the client compresses only what shrinks), else ``size`` raw bytes.
    """
    count = 0
    made: set[str] = set()
    while True:
        (length,) = _U32.unpack(reader.read_exact(4))
        meta: UploadMeta = json.loads(reader.read_exact(length).decode("utf-8"))
        if meta.get("end"):
            return count
        key, size = check_object_key(meta.get("key")), int(meta["size"])
        digest, executable = parse_object_key(key)
        final = store.object_path(root, digest, 0o755 if executable else 0o644)
        folder = os.path.dirname(final)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        # A name of our own (digest and pid) instead of mkstemp: cheaper, and as safe
        # since only this process writes it and it is renamed or removed below.
        tmp = "%s.in-%d" % (final, os.getpid())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            h = hashlib.sha256()
            written = 0
            with os.fdopen(fd, "wb") as out:
                if meta.get("z"):
                    inflate = zlib.decompressobj()
                    while not inflate.eof:
                        data = reader.read_some(CHUNK)
                        if not data:
                            raise EOFError("upload ended inside %s" % key)
                        plain = inflate.decompress(data)
                        h.update(plain)
                        out.write(plain)
                        written += len(plain)
                    reader.unread(inflate.unused_data)
                else:
                    while written < size:
                        data = reader.read_some(min(size - written, CHUNK))
                        if not data:
                            raise EOFError("upload ended inside %s" % key)
                        h.update(data)
                        out.write(data)
                        written += len(data)
            if written != size or h.hexdigest() != digest:
                raise ValueError("object %s arrived damaged (digest mismatch)" % digest)
            store.finish_object(tmp, final, 0o755 if executable else 0o644)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        count += 1


def _send_outputs(root: str, run_id: str, files: list[Any], out: IO[bytes]) -> None:
    def chunks() -> Any:
        deflate = zlib.compressobj(1)
        for rel, size, _mtime in files:
            # Send exactly `size` bytes (zeros if the file shrank meanwhile): the client
            # checks sizes, and the next collection fixes a file that was still changing.
            with contextlib.ExitStack() as stack:
                try:
                    fh: IO[bytes] | None = stack.enter_context(
                        open(ops.output_path(root, run_id, rel), "rb")
                    )
                except OSError:
                    fh = None
                left = int(size)
                while left:
                    data = fh.read(min(left, CHUNK)) if fh else b""
                    if not data:
                        data = b"\0" * min(left, CHUNK)
                    left -= len(data)
                    yield deflate.compress(data)
        yield deflate.flush()

    write_chunks(out, chunks())


def _log_meta(chunks: list[rundir.LogRead]) -> list[LogChunkMeta]:
    return [{"name": c["name"], "offset": c["offset"], "size": len(c["data"])} for c in chunks]


def _dispatch(root: str, header: dict[str, Any], inp: IO[bytes], out: IO[bytes]) -> None:
    op = header.get("op")
    args = header.get("args") or {}
    if op == "put":
        reader = ChunkReader(inp)
        try:
            stored = _receive_objects(root, reader)
        finally:
            reader.drain()
        write_frame(out, {"ok": True, "result": stored})
        return
    if op == "fetch":
        files = ops.list_outputs(root, args["run_id"], args.get("have") or {})
        write_frame(out, {"ok": True, "result": files, "stream": True})
        _send_outputs(root, args["run_id"], files, out)
        return
    if op == "logs":
        chunks = rundir.read_logs(
            root,
            args["run_id"],
            args.get("offsets") or {},
            int(args.get("max_bytes") or rundir.MAX_CHUNK),
        )
        write_frame(
            out, {"ok": True, "result": _log_meta(chunks)}, b"".join(c["data"] for c in chunks)
        )
        return
    if op == "wait":
        limit = int(args.get("max_bytes") or rundir.MAX_CHUNK)
        status, chunks = rundir.wait_news(
            root,
            args["run_id"],
            args.get("offsets") or {},
            args.get("known"),
            float(args.get("timeout") or 0),
            limit,
        )
        data = b"".join(c["data"] for c in chunks)
        reply: WaitReply = {
            "status": status,
            "logs": _log_meta(chunks),
            "complete": len(data) < limit,
        }
        write_frame(out, {"ok": True, "result": reply}, data)
        return
    if op == "collected":
        # The cap walks every run folder and object: done after the reply, so that the
        # client does not wait for it (the next request on this connection may).
        marked = storage.mark_collected(root, args["run_id"], apply_cap=False)
        write_frame(out, {"ok": True, "result": marked})
        with contextlib.suppress(Exception):
            storage.enforce_cap(root, args["run_id"] if marked["marked"] else None)
        return
    if op == "poll":
        status = rundir.read_status(root, args["run_id"])
        chunks = rundir.read_logs(root, args["run_id"], args.get("offsets") or {})
        write_frame(
            out,
            {"ok": True, "result": {"status": status, "logs": _log_meta(chunks)}},
            b"".join(c["data"] for c in chunks),
        )
        return
    simple = ops.operations(root)
    if op not in simple:
        raise ProtocolError("unknown operation %r" % op)
    write_frame(out, {"ok": True, "result": simple[op](**args)})


def serve(root: str, inp: IO[bytes], out: IO[bytes]) -> int:
    """Answer requests until the client closes the connection."""
    rundir.make_private(root)
    write_frame(out, {"ok": True, "result": ops.hello(root)})
    while True:
        try:
            header, _payload = read_frame(inp)
        except EOFError:
            return 0
        try:
            _dispatch(root, header, inp, out)
        except (ValueError, KeyError, TypeError, ProtocolError, OSError) as exc:
            full = store.no_space(exc)
            kind = "user" if full or isinstance(exc, (ValueError, ProtocolError)) else "internal"
            write_frame(
                out,
                {
                    "ok": False,
                    "error": full or str(exc) or type(exc).__name__,
                    "kind": kind,
                    "trace": traceback.format_exc(limit=5),
                },
            )


def default_root() -> str:
    return os.environ.get("TARGETS_HOME") or os.path.join(os.path.expanduser("~"), ".targets")


def main(argv: list[str]) -> int:
    root = argv[1] if len(argv) > 1 else default_root()
    return serve(root, sys.stdin.buffer, sys.stdout.buffer)


__all__ += ["AGENT_VERSION", "default_root", "main"]
