"""A Google Cloud Storage emulator (``gcp-storage-emulator``, from PyPI) on 127.0.0.1 for
the tests.

``scripts/storage-test-setup.sh`` installs it into the suite's virtualenv (as it does
moto's S3 server). The fixture starts one server per test process (session scope) on a
free port of 127.0.0.1, in memory, and stops it at the end.

gcsfs and google-cloud-storage honour ``STORAGE_EMULATOR_HOST``: with it set, they talk
to the emulator and, without Google credentials, anonymously. Use it by importing the
fixture (conftest.py does not load this module)::

    from tests.gcs_emulator import GcsEmulator, gcs_emulator_fixture  # noqa: F401 - fixture

    def test_something(gcs_emulator: GcsEmulator, monkeypatch) -> None:
        for key, value in gcs_emulator.env().items():
            monkeypatch.setenv(key, value)
        gcs_emulator.put("bucket/data/x.csv", b"...")
        # gs://bucket/data/x.csv now reads it

When the emulator is missing or does not start, the fixture skips the test with the
reason, or fails it when ``CI`` is set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.local_server import ObjectStore, free_port, local_server, server_executable

__all__ = ["GcsEmulator", "gcs_emulator_fixture"]

SETUP_HINT = "run `bash scripts/test-services.sh` (it installs gcp-storage-emulator)"


@dataclass(frozen=True, slots=True)
class GcsEmulator(ObjectStore):
    """A running GCS emulator. Creating it starts nothing."""

    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a user sets to point Google's libraries at an emulator."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    def filesystem(self) -> Any:
        """A gcsfs file system on the emulator (for arranging and checking test data)."""
        # gcsfs's plain file system: its default class (ExtendedGcsFileSystem) first asks
        # a gRPC control API for the bucket type, which an emulator does not serve (with
        # token="anon" each call then waits 60 s for it).
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(endpoint_url=self.endpoint, token="anon", skip_instance_cache=True)


@pytest.fixture(scope="session", name="gcs_emulator")
def gcs_emulator_fixture() -> Iterator[GcsEmulator]:
    """One GCS emulator on 127.0.0.1 for the test process."""
    executable = server_executable("gcp-storage-emulator", "gcsfs", SETUP_HINT)
    port = free_port()
    argv = [executable, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
    env = {k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"}
    with local_server("gcp-storage-emulator", argv, port, env=env):
        yield GcsEmulator(port)
