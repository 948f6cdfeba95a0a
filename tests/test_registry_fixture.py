"""The private registry test setup works: the registry on 127.0.0.1 answers the Registry
API v2 with Basic auth, ``docker login`` accepts its password and refuses a wrong one, the
engine pulls the base image from it only after login, and an image absent from the engine
is downloaded layer by layer (uncompressed layer tars) and runs."""

from __future__ import annotations

import base64
import http.client
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dockerd import (  # noqa: F401 - fixture, found by pytest under its name
    DockerCommandFailed,
    DockerEngine,
    docker_engine_fixture,
)
from tests.registry import (  # noqa: F401 - fixture, found by pytest under its name
    LAYER_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    LocalRegistry,
    local_registry_fixture,
)


def request(
    registry: LocalRegistry, method: str, path: str, password: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request to the registry, with Basic auth unless
    ``password`` is the empty string (``None``: the right password)."""
    headers = {}
    if password != "":
        token = f"{registry.username}:{registry.password if password is None else password}"
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=30)
    try:
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    """A fresh docker CLI config folder: logins never touch the machine's ~/.docker."""
    folder = tmp_path / "docker-config"
    folder.mkdir()
    return folder


@pytest.fixture
def image_names(docker_engine: DockerEngine) -> Iterator[list[str]]:
    """Image names the test adds to the engine; removed afterwards (never the base image)."""
    names: list[str] = []
    yield names
    for name in names:
        assert name != docker_engine.image
        docker_engine.run("image", "rm", name, check=False)


def login(
    engine: DockerEngine, config: Path, registry: LocalRegistry, password: str
) -> DockerCommandFailed | None:
    try:
        engine.run(
            "--config",
            str(config),
            "login",
            "--username",
            registry.username,
            "--password-stdin",
            registry.address,
            input=password,
        )
    except DockerCommandFailed as failed:
        return failed
    return None


def test_api_requires_basic_auth(local_registry: LocalRegistry) -> None:
    manifest_path = "/v2/private/python/manifests/1"
    for password in ("", "wrong"):
        status, headers, body = request(local_registry, "GET", "/v2/", password)
        assert status == 401
        assert headers["WWW-Authenticate"].startswith('Basic realm="')
        assert json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"
        assert request(local_registry, "GET", manifest_path, password)[0] == 401

    status, headers, _ = request(local_registry, "GET", "/v2/")
    assert status == 200
    assert headers["Docker-Distribution-API-Version"] == "registry/2.0"
    logged = [r for r in local_registry.requests if r.path == "/v2/"]
    assert [r.authorized for r in logged[-3:]] == [False, False, True]


def test_api_serves_manifest_and_blobs(local_registry: LocalRegistry) -> None:
    path = "/v2/private/python/manifests/1"
    before = local_registry.count("GET", "manifests", "private/python")
    status, headers, body = request(local_registry, "GET", path)
    assert status == 200
    assert headers["Content-Type"] == MANIFEST_MEDIA_TYPE
    manifest = json.loads(body)
    assert manifest["schemaVersion"] == 2
    assert {layer["mediaType"] for layer in manifest["layers"]} == {LAYER_MEDIA_TYPE}
    digest = headers["Docker-Content-Digest"]
    assert local_registry.count("GET", "manifests", "private/python") == before + 1

    # HEAD and GET by digest give the same manifest.
    status, head_headers, head_body = request(local_registry, "HEAD", path)
    assert (status, head_body, head_headers["Docker-Content-Digest"]) == (200, b"", digest)
    assert request(local_registry, "GET", f"/v2/private/python/manifests/{digest}")[2] == body

    config = manifest["config"]
    status, headers, blob = request(
        local_registry, "GET", f"/v2/private/python/blobs/{config['digest']}"
    )
    assert status == 200
    assert headers["Docker-Content-Digest"] == config["digest"]
    assert len(blob) == int(headers["Content-Length"]) == config["size"]
    assert json.loads(blob)["rootfs"]["type"] == "layers"

    layer = manifest["layers"][0]
    status, headers, empty = request(
        local_registry, "HEAD", f"/v2/private/python/blobs/{layer['digest']}"
    )
    assert (status, empty, int(headers["Content-Length"])) == (200, b"", layer["size"])


def test_api_unknown_names_are_404_with_error_json(local_registry: LocalRegistry) -> None:
    missing = "sha256:" + "0" * 64
    cases = {
        "/v2/private/python/manifests/2": "MANIFEST_UNKNOWN",
        "/v2/private/other/manifests/1": "MANIFEST_UNKNOWN",
        f"/v2/private/python/blobs/{missing}": "BLOB_UNKNOWN",
        "/v2/private/python/blobs/not-a-digest": "BLOB_UNKNOWN",
    }
    for path, code in cases.items():
        status, headers, body = request(local_registry, "GET", path)
        assert status == 404, path
        assert headers["Content-Type"].startswith("application/json")
        assert json.loads(body)["errors"][0]["code"] == code
        assert request(local_registry, "HEAD", path)[0] == 404


def test_login_with_password_only(
    docker_engine: DockerEngine, local_registry: LocalRegistry, docker_config: Path
) -> None:
    failed = login(docker_engine, docker_config, local_registry, "not-the-password")
    assert failed is not None
    assert "401" in failed.stderr or "unauthorized" in failed.stderr.lower(), failed
    assert login(docker_engine, docker_config, local_registry, local_registry.password) is None
    auths = json.loads((docker_config / "config.json").read_text())["auths"]
    assert local_registry.address in auths


def test_pull_needs_login_then_runs(
    docker_engine: DockerEngine,
    local_registry: LocalRegistry,
    docker_config: Path,
    image_names: list[str],
) -> None:
    image = local_registry.image
    assert image == f"{local_registry.address}/private/python:1"
    image_names.append(image)
    config = ["--config", str(docker_config)]

    refused = docker_engine.run(*config, "pull", image, check=False)
    assert refused.returncode != 0
    message = refused.stderr.lower()
    assert "unauthorized" in message or "no basic auth credentials" in message, refused.stderr

    assert login(docker_engine, docker_config, local_registry, local_registry.password) is None
    before = local_registry.count(kind="manifests", repository="private/python")
    docker_engine.run(*config, "pull", image)
    assert local_registry.count(kind="manifests", repository="private/python") > before
    out = docker_engine.run(
        "run", "--rm", "--network", "none", image, "python3", "-c", "print(1)"
    ).stdout
    assert out == "1\n"


def test_absent_image_is_downloaded_layer_by_layer(
    docker_engine: DockerEngine,
    local_registry: LocalRegistry,
    docker_config: Path,
    image_names: list[str],
) -> None:
    """The base image is already in the engine, so pulling it fetches no blob: this pull
    of an image the engine does not have proves the engine takes the uncompressed layers."""
    unique = uuid.uuid4().hex[:12]
    source = f"targets-test-registry-source:{unique}"
    container = f"targets-test-registry-{unique}"
    image_names.append(source)
    try:
        docker_engine.run(
            "run",
            "--network",
            "none",
            "--name",
            container,
            docker_engine.image,
            "python3",
            "-c",
            f"open('/marker', 'w').write('{unique}')",
        )
        docker_engine.run("commit", container, source)
    finally:
        docker_engine.run("rm", "--force", container, check=False)
    repository = f"private/marked-{unique}"
    digest = local_registry.add_image(docker_engine, source, repository, "1")
    docker_engine.run("image", "rm", source)

    image = f"{local_registry.address}/{repository}:1"
    image_names.append(image)
    assert login(docker_engine, docker_config, local_registry, local_registry.password) is None
    pulled = docker_engine.run("--config", str(docker_config), "pull", image).stdout
    assert digest in pulled
    blobs = [r for r in local_registry.requests if r.kind == "blobs" and r.repository == repository]
    assert blobs, "the engine fetched no blob"
    assert all(r.status == 200 and r.authorized for r in blobs)
    out = docker_engine.run(
        "run", "--rm", "--network", "none", image, "python3", "-c", "print(open('/marker').read())"
    ).stdout
    assert out == f"{unique}\n"
