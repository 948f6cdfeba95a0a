"""moto's S3 server (``moto_server``, PyPI ``moto[server]``) on 127.0.0.1 for the tests.

pyproject's ``test`` extra installs it (``scripts/storage-test-setup.sh`` too, when the
virtualenv lacks it). The fixture starts one server per test process (session scope) on
a free port of 127.0.0.1 and stops it at the end.

Use it by importing the fixture (conftest.py does not load this module)::

    from tests.moto_s3 import MotoS3, moto_s3_fixture  # noqa: F401 - fixture

    def test_something(moto_s3: MotoS3, monkeypatch) -> None:
        for key, value in moto_s3.env().items():
            monkeypatch.setenv(key, value)
        moto_s3.put("bucket/data/x.csv", b"...")
        # s3://bucket/data/x.csv now reads it, through botocore's own settings

``env()`` is what a user sets for an S3-compatible store: ``AWS_ENDPOINT_URL_S3``, a key
pair (moto accepts any) and a region. When moto_server is missing or does not start,
the fixture skips the test with the reason, or fails it when ``CI`` is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.local_server import ObjectStore, free_port, local_server, server_executable

__all__ = ["MotoS3", "moto_s3_fixture"]

SETUP_HINT = "pip install -e '.[test]' (or run `bash scripts/test-services.sh`)"


@dataclass(frozen=True, slots=True)
class MotoS3(ObjectStore):
    """A running moto S3 server. Creating it starts nothing."""

    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def filesystem(self) -> Any:
        """An s3fs file system on the server (for arranging test data)."""
        import s3fs

        return s3fs.S3FileSystem(
            key="testing",
            secret="testing",
            # No region: s3fs would send it as a location constraint, which us-east-1 is not.
            client_kwargs={"endpoint_url": self.endpoint},
            skip_instance_cache=True,
        )


@pytest.fixture(scope="session", name="moto_s3")
def moto_s3_fixture() -> Iterator[MotoS3]:
    """One moto S3 server on 127.0.0.1 for the test process."""
    executable = server_executable("moto_server", "s3fs", SETUP_HINT)
    port = free_port()
    with local_server("moto_server", [executable, "-H", "127.0.0.1", "-p", str(port)], port):
        yield MotoS3(port)
