"""A private image registry on 127.0.0.1 for tests: read-only Docker Registry HTTP API v2.

No image registry is reachable from the test machine, so tests of "pull from a private
registry with a username and password" use this one. It is a small stdlib HTTP server
(:class:`http.server.ThreadingHTTPServer` in a background thread) bound to a free port of
127.0.0.1, with HTTP Basic auth on every ``/v2/`` request. The Docker engine treats
registries on 127.0.0.0/8 as insecure, so plain HTTP works for ``docker login`` and
``docker pull`` with no daemon configuration.

Images come from the local engine: :meth:`LocalRegistry.add_image` runs ``docker save``,
reads the saved layout (``manifest.json``, the config JSON, the layer tars) and publishes
an image manifest v2 schema 2 whose layers are the uncompressed layer tars
(``application/vnd.docker.image.rootfs.diff.tar``, which the engine accepts) and whose
config is the saved config blob. Pushing is not supported.

Use the fixture from another test module by importing it (conftest.py does not load this
module), together with the engine fixture it depends on::

    from tests.dockerd import DockerEngine, docker_engine_fixture  # noqa: F401 - fixture
    from tests.registry import LocalRegistry, local_registry_fixture  # noqa: F401 - fixture

    def test_something(docker_engine: DockerEngine, local_registry: LocalRegistry) -> None:
        image = local_registry.image  # "127.0.0.1:PORT/private/python:1"
        before = local_registry.count(kind="manifests")
        ...                           # docker --config TMP login; the code under test
        assert local_registry.count(kind="manifests") == before  # it pulled nothing

- ``local_registry`` (session): a running :class:`LocalRegistry` with the test base image
  published as ``.image`` (``{address}/private/python:1``); ``.address`` is
  ``127.0.0.1:PORT``, ``.username`` / ``.password`` the credentials (the password is random
  per session), ``.requests`` the log of every request (:class:`RegistryRequest`), and
  ``.count(method, kind)`` counts logged requests. The log is shared by the whole session:
  take ``len(local_registry.requests)`` or a count before the step under test.

What the engine (20.10) sends for ``docker pull``: ``GET /v2/`` (401, then again with
auth), ``HEAD manifests/<tag>``, ``GET manifests/<digest>``, then ``GET blobs/<digest>``
for the config and each layer it lacks. When the image id is already in the engine (as for
``.image``, whose id is the base image's) it fetches no blob but still asks for the
manifest, so "no pull happened" is best asserted as no new ``manifests`` request.

Images pulled from it have the same image id as their source (the config blob is the same),
so ``docker image rm 127.0.0.1:PORT/private/python:1`` only removes that name, never the
base image.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import pytest

from tests.dockerd import DockerEngine

__all__ = [
    "BLOB_MEDIA_TYPE",
    "CONFIG_MEDIA_TYPE",
    "LAYER_MEDIA_TYPE",
    "LAYER_MEDIA_TYPE_GZIP",
    "MANIFEST_MEDIA_TYPE",
    "LocalRegistry",
    "RegistryRequest",
    "local_registry_fixture",
]

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.docker.image.rootfs.diff.tar"
LAYER_MEDIA_TYPE_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
BLOB_MEDIA_TYPE = "application/octet-stream"

DEFAULT_USERNAME = "targets-test"
TEST_REPOSITORY = "private/python"
TEST_TAG = "1"

# Repository names and references as the distribution spec defines them.
_NAME = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_ROUTE = re.compile(rf"/v2/(?P<name>{_NAME})/(?P<kind>manifests|blobs)/(?P<ref>[^/]+)")
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class RegistryRequest:
    """One request the registry answered."""

    method: str
    """``GET`` or ``HEAD`` (anything else is answered 405 and logged too)."""
    path: str
    """The request path without the query string, e.g. ``/v2/private/python/manifests/1``."""
    kind: str
    """``base`` (``/v2/``), ``manifests``, ``blobs`` or ``other``."""
    repository: str | None
    """The repository name of a manifest or blob request."""
    reference: str | None
    """The tag or digest of a manifest or blob request."""
    authorized: bool
    """Whether the request carried the right username and password."""
    status: int
    """The HTTP status of the answer."""


@dataclass(frozen=True, slots=True)
class _Manifest:
    digest: str
    body: bytes


class LocalRegistry:
    """A read-only Docker Registry HTTP API v2 server on ``127.0.0.1`` with Basic auth.

    Start it with :meth:`start` (or use it as a context manager), publish images with
    :meth:`add_image`, stop it with :meth:`stop`. Blobs are files in a private temporary
    folder, removed by :meth:`stop`."""

    def __init__(self, username: str = DEFAULT_USERNAME, password: str | None = None) -> None:
        self.username = username
        self.password = password if password is not None else secrets.token_urlsafe(18)
        self.realm = "targets-test-registry"
        self.requests: list[RegistryRequest] = []
        self._lock = threading.Lock()
        self._manifests: dict[tuple[str, str], _Manifest] = {}
        self._blobs: dict[tuple[str, str], Path] = {}
        self._dir: Path | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the registry is not started")
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the registry part of image names (and ``docker login``)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def image(self) -> str:
        """The test base image as published by the ``local_registry`` fixture."""
        return f"{self.address}/{TEST_REPOSITORY}:{TEST_TAG}"

    def start(self) -> LocalRegistry:
        if self._server is not None:
            return self
        self._dir = Path(tempfile.mkdtemp(prefix="targets-test-registry-"))
        (self._dir / "blobs").mkdir()
        handler = type("Handler", (_Handler,), {"registry": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"registry-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread, folder = self._server, self._thread, self._dir
        self._server = self._thread = self._dir = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the request log --------------------------------------------------------------

    def count(
        self, method: str | None = None, kind: str | None = None, repository: str | None = None
    ) -> int:
        """How many logged requests match every given field (``None`` matches anything)."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method)
                and (kind is None or r.kind == kind)
                and (repository is None or r.repository == repository)
            )

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def _log(self, request: RegistryRequest) -> None:
        with self._lock:
            self.requests.append(request)

    # -- content ------------------------------------------------------------------------

    def add_image(
        self,
        engine: DockerEngine,
        source_tag: str,
        repository: str,
        tag: str,
        *,
        compress: bool = False,
    ) -> str:
        """Publish the local engine's image ``source_tag`` as ``repository:tag``.

        Runs ``docker save`` into a temporary folder and reads its layout. Layers are
        served as the saved (uncompressed) tars, or gzipped when ``compress`` is true.
        Returns the manifest's digest (``sha256:...``)."""
        if self._dir is None:
            raise RuntimeError("start the registry before adding images")
        if not re.fullmatch(_NAME, repository) or not _TAG.fullmatch(tag):
            raise ValueError(f"not a valid repository or tag: {repository}:{tag}")
        with tempfile.TemporaryDirectory(prefix="save-", dir=self._dir) as tmp:
            archive = Path(tmp) / "image.tar"
            engine.run("save", "-o", str(archive), source_tag, timeout=600)
            with tarfile.open(archive) as tar:
                entries = json.loads(_member_bytes(tar, "manifest.json"))
                entry = _pick_entry(entries, source_tag)
                config = _member_bytes(tar, entry["Config"])
                config_digest = self._store_bytes(repository, config)
                diff_ids = json.loads(config).get("rootfs", {}).get("diff_ids", [])
                layers: list[dict[str, Any]] = []
                for index, name in enumerate(entry["Layers"]):
                    source = tar.extractfile(name)
                    if source is None:
                        raise ValueError(f"{name} is not a file in the docker save archive")
                    with source:
                        digest, size, diff_id = self._store_layer(repository, source, compress)
                    if index < len(diff_ids) and diff_ids[index] != diff_id:
                        raise ValueError(f"layer {name} does not match diff_id {diff_ids[index]}")
                    media_type = LAYER_MEDIA_TYPE_GZIP if compress else LAYER_MEDIA_TYPE
                    layers.append({"mediaType": media_type, "size": size, "digest": digest})
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {
                "mediaType": CONFIG_MEDIA_TYPE,
                "size": len(config),
                "digest": config_digest,
            },
            "layers": layers,
        }
        body = json.dumps(manifest, indent=3).encode()
        digest = _sha256(body)
        with self._lock:
            self._manifests[(repository, tag)] = _Manifest(digest, body)
            self._manifests[(repository, digest)] = _Manifest(digest, body)
        return digest

    def _blob_path(self, digest: str) -> Path:
        assert self._dir is not None
        return self._dir / "blobs" / digest.replace(":", "-")

    def _store_bytes(self, repository: str, data: bytes) -> str:
        digest = _sha256(data)
        path = self._blob_path(digest)
        path.write_bytes(data)
        with self._lock:
            self._blobs[(repository, digest)] = path
        return digest

    def _store_layer(
        self, repository: str, source: IO[bytes], compress: bool
    ) -> tuple[str, int, str]:
        """Copy a layer tar into the blob store; (blob digest, blob size, diff_id)."""
        assert self._dir is not None
        raw = hashlib.sha256()
        blob = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(prefix="blob-", dir=self._dir)
        tmp = Path(tmp_name)
        try:
            with open(fd, "wb") as out:
                if compress:
                    import gzip

                    # mtime=0: the same layer gives the same gzip bytes, so the same digest.
                    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0) as gz:
                        while chunk := source.read(_CHUNK):
                            raw.update(chunk)
                            gz.write(chunk)
                else:
                    while chunk := source.read(_CHUNK):
                        raw.update(chunk)
                        out.write(chunk)
            with open(tmp, "rb") as written:
                while chunk := written.read(_CHUNK):
                    blob.update(chunk)
                    size += len(chunk)
            digest = f"sha256:{blob.hexdigest()}"
            tmp.replace(self._blob_path(digest))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with self._lock:
            self._blobs[(repository, digest)] = self._blob_path(digest)
        return digest, size, f"sha256:{raw.hexdigest()}"

    def _manifest(self, repository: str, reference: str) -> _Manifest | None:
        with self._lock:
            return self._manifests.get((repository, reference))

    def _blob(self, repository: str, digest: str) -> Path | None:
        with self._lock:
            return self._blobs.get((repository, digest))

    def _authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        expected = f"{self.username}:{self.password}".encode()
        return bool(sep) and secrets.compare_digest(f"{user}:{password}".encode(), expected)


class _Handler(BaseHTTPRequestHandler):
    registry: LocalRegistry
    protocol_version = "HTTP/1.1"
    server_version = "targets-test-registry/1"
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the registry's own request log is :attr:`LocalRegistry.requests`."""

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def _refuse_method(self) -> None:
        self._log("other", None, None, False, 405)
        self._error(405, "UNSUPPORTED", "this test registry is read-only", head=False)

    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse_method

    def _handle(self, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        authorized = self.registry._authorized(self.headers.get("Authorization"))
        route = _ROUTE.fullmatch(path)
        kind = "base" if path in ("/v2", "/v2/") else route["kind"] if route else "other"
        repository = route["name"] if route else None
        reference = route["ref"] if route else None

        def log(status: int) -> None:
            self._log(kind, repository, reference, authorized, status)

        if not path.startswith("/v2"):
            log(404)
            self._error(404, "NOT_FOUND", "not a registry API path", head)
            return
        if not authorized:
            log(401)
            self._error(401, "UNAUTHORIZED", "authentication required", head)
            return
        if kind == "base":
            log(200)
            self._send(200, b"{}", "application/json", head)
            return
        if route is None or repository is None or reference is None:
            log(404)
            self._error(404, "NAME_UNKNOWN", "repository name not known to registry", head)
            return
        if kind == "manifests":
            manifest = self.registry._manifest(repository, reference)
            if manifest is None:
                log(404)
                self._error(404, "MANIFEST_UNKNOWN", "manifest unknown", head, reference)
                return
            log(200)
            digest_header = {
                "Docker-Content-Digest": manifest.digest,
                "ETag": f'"{manifest.digest}"',
            }
            self._send(200, manifest.body, MANIFEST_MEDIA_TYPE, head, digest_header)
            return
        blob = self.registry._blob(repository, reference) if _DIGEST.fullmatch(reference) else None
        if blob is None:
            log(404)
            self._error(404, "BLOB_UNKNOWN", "blob unknown to registry", head, reference)
            return
        log(200)
        self._send_file(blob, reference, head)

    def _log(
        self,
        kind: str,
        repository: str | None,
        reference: str | None,
        authorized: bool,
        status: int,
    ) -> None:
        self.registry._log(
            RegistryRequest(
                method=self.command,
                path=self.path.split("?", 1)[0],
                kind=kind,
                repository=repository,
                reference=reference,
                authorized=authorized,
                status=status,
            )
        )

    def _headers(self, status: int, length: int, content_type: str, extra: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        head: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        self._headers(status, len(body), content_type, extra or {})
        if not head:
            self.wfile.write(body)

    def _send_file(self, path: Path, digest: str, head: bool) -> None:
        extra = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"'}
        with open(path, "rb") as source:
            size = source.seek(0, 2)
            source.seek(0)
            self._headers(200, size, BLOB_MEDIA_TYPE, extra)
            if not head:
                shutil.copyfileobj(source, self.wfile, _CHUNK)

    def _error(
        self, status: int, code: str, message: str, head: bool, detail: object = None
    ) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message, "detail": detail}]})
        extra = {}
        if status == 401:
            extra["WWW-Authenticate"] = f'Basic realm="{self.registry.realm}"'
        self._send(status, body.encode(), "application/json; charset=utf-8", head, extra)


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _member_bytes(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    if member is None:
        raise ValueError(f"{name} is not a file in the docker save archive")
    with member:
        return member.read()


def _pick_entry(entries: list[dict[str, Any]], source_tag: str) -> dict[str, Any]:
    """The manifest.json entry of ``source_tag`` (the only one when saved by id)."""
    wanted = {source_tag, f"{source_tag}:latest", f"docker.io/library/{source_tag}"}
    for entry in entries:
        if wanted & set(entry.get("RepoTags") or []):
            return entry
    if len(entries) == 1:
        return entries[0]
    raise ValueError(f"docker save wrote no entry for {source_tag}")


@pytest.fixture(scope="session", name="local_registry")
def local_registry_fixture(docker_engine: DockerEngine) -> Iterator[LocalRegistry]:
    """A private registry on 127.0.0.1 serving the test base image as ``.image``."""
    with LocalRegistry() as registry:
        registry.add_image(docker_engine, docker_engine.image, TEST_REPOSITORY, TEST_TAG)
        yield registry
