"""Azurite, the Azure Storage emulator, as a blob service on 127.0.0.1 for the tests.

``scripts/storage-test-setup.sh`` (run by ``scripts/test-services.sh``) installs it from
the npm registry into ``/opt/targets-test/azurite``; ``TARGETS_TEST_AZURITE`` may name
another ``azurite-blob``. The fixture starts one blob service per test process (session
scope) with its data in a temporary folder, on a free port of 127.0.0.1, and stops it at the end.

Use it by importing the fixture (conftest.py does not load this module)::

    from tests.azurite import Azurite, azurite_fixture  # noqa: F401 - fixture

    def test_something(azurite: Azurite, monkeypatch) -> None:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
        azurite.put("datasets/iris.csv", b"...")
        # wasbs://datasets@devstoreaccount1.blob.core.windows.net/iris.csv now reads it

The account is Azurite's well-known development account (``devstoreaccount1`` and its
published key): a ``wasbs://C@devstoreaccount1.blob.core.windows.net/P`` URI plus the
connection string reaches the emulator, as a real account's URI plus its connection
string reaches Azure.

When Azurite is not installed or does not start, the fixture skips the test with the
reason, or fails it when ``CI`` is set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.dockerd import skip_or_fail
from tests.local_server import free_port, local_server

__all__ = ["ACCOUNT", "Azurite", "azurite_fixture"]

ACCOUNT = "devstoreaccount1"
# Azurite's documented development key (public, the same in every Azurite).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
INSTALLED = Path("/opt/targets-test/azurite/node_modules/.bin/azurite-blob")
SETUP_HINT = "run `bash scripts/test-services.sh` (it runs scripts/storage-test-setup.sh)"


@dataclass(frozen=True, slots=True)
class Azurite:
    """A running Azurite blob service. Creating it starts nothing."""

    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={self.endpoint};"
        )

    def filesystem(self) -> Any:
        """An adlfs file system on the emulator (for arranging test data)."""
        import adlfs

        return adlfs.AzureBlobFileSystem(
            connection_string=self.connection_string, skip_instance_cache=True
        )

    def put(self, path: str, data: bytes) -> None:
        """Write ``container/key``, creating the container when needed."""
        fs = self.filesystem()
        container = path.split("/", 1)[0]
        if not fs.exists(container):
            fs.mkdir(container)
        fs.pipe(path, data)


def _executable() -> str | None:
    given = os.environ.get("TARGETS_TEST_AZURITE")
    if given:
        return given
    if INSTALLED.exists():
        return str(INSTALLED)
    return shutil.which("azurite-blob")


@pytest.fixture(scope="session", name="azurite")
def azurite_fixture() -> Iterator[Azurite]:
    """One Azurite blob service on 127.0.0.1 for the test process."""
    executable = _executable()
    if executable is None:
        skip_or_fail(f"Azurite (azurite-blob) is not installed: {SETUP_HINT}")
    try:
        import adlfs  # noqa: F401 - the tests arrange data with it
    except ImportError:
        skip_or_fail("adlfs is not installed: pip install -e '.[test]'")
    port = free_port()
    argv = [
        executable,
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--loose",
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--location",
        ".",  # its data, in the server's own temporary folder
    ]
    with local_server("azurite", argv, port):
        yield Azurite(port)
