"""Cloud storage URIs that v2 jobs name, and the fsspec file systems that read them.

- ``wasbs://C@A.blob.core.windows.net/P``, ``wasb://``, ``abfss://C@A.dfs.core.windows.net/P``,
  ``abfs://`` and ``https://A.blob.core.windows.net/C/P``: adlfs, with
  ``AZURE_STORAGE_CONNECTION_STRING`` (its ``AccountName`` must be ``A``),
  ``AZURE_STORAGE_ACCOUNT_KEY``, ``AZURE_STORAGE_SAS_TOKEN`` or
  ``AZURE_STORAGE_CLIENT_ID``/``_SECRET``/``TENANT_ID`` as adlfs reads them; with none of
  them, anonymous access (a public container), then azure-identity's
  ``DefaultAzureCredential``.
- ``s3://B/K``: s3fs, with botocore's chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
  ``AWS_PROFILE``, ``AWS_ENDPOINT_URL_S3``); anonymous when it finds no credentials.
- ``gs://B/K``, ``gcs://``: gcsfs, with google-auth's default chain, then anonymous
  (``STORAGE_EMULATOR_HOST`` for an emulator).

Design choice: before the first request, the storage host is reached with a plain TCP
connection (10 s). The SDKs retry a host that does not resolve for a minute and a half;
a job must be refused at once, naming the URL and the network problem. Behind an HTTPS
proxy (``HTTPS_PROXY``) the probe is skipped: only the proxy knows the way.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from targets.errors import ConfigError, MissingExtraError

__all__ = ["RemoteUri", "open_filesystem", "parse_uri", "translated_errors"]

_AZURE_HOST = r"(?P<account>[A-Za-z0-9-]{1,63})\.(?:blob|dfs)\.core\.windows\.net"
_WASB = re.compile(rf"^(?:wasbs?|abfss?)://(?P<container>[^@/]+)@{_AZURE_HOST}(?:/(?P<path>.*))?$")
# ``wasbs://ACCOUNT.blob.core.windows.net/CONTAINER/P``: the container in the path, as
# azureml-examples' cli/assets/data/cloud-*-wasbs.yml write it. Read like the https form.
_WASB_PATH = re.compile(
    rf"^(?:wasbs?|abfss?)://{_AZURE_HOST}/(?P<container>[^/]+)(?:/(?P<path>.*))?$"
)
_BLOB_HTTPS = re.compile(rf"^https://{_AZURE_HOST}/(?P<container>[^/?]+)(?:/(?P<path>[^?]*))?$")
_BUCKET = re.compile(r"^(?P<scheme>s3|gs|gcs)://(?P<bucket>[^/]+)(?:/(?P<path>.*))?$")

_EXTRAS = {"az": ("adlfs", "azure-blob"), "s3": ("s3fs", "s3"), "gcs": ("gcsfs", "gcs")}


@dataclass(frozen=True, slots=True)
class RemoteUri:
    """A file or folder in cloud storage. ``path`` is ``container/key`` (``bucket/key``)
    without a trailing slash, as the fsspec file system names it."""

    uri: str
    protocol: str
    """``az``, ``s3`` or ``gcs``."""
    path: str
    account: str | None = None
    """The Azure storage account."""

    @property
    def module(self) -> str:
        return _EXTRAS[self.protocol][0]

    @property
    def extra(self) -> str:
        return _EXTRAS[self.protocol][1]

    def child(self, relative: str) -> RemoteUri:
        """The URI of ``relative`` under this folder (same account and credentials)."""
        path = f"{self.path}/{relative.strip('/')}" if relative.strip("/") else self.path
        return RemoteUri(f"{self.uri.rstrip('/')}/{relative}", self.protocol, path, self.account)


def parse_uri(uri: str) -> RemoteUri | None:
    """The cloud location ``uri`` names, or None when it is not a cloud storage URI (a
    local path, an ``http(s)`` URL of another host, an ``azureml:`` reference)."""
    found = _WASB.match(uri) or _WASB_PATH.match(uri) or _BLOB_HTTPS.match(uri)
    if found:
        path = f"{found.group('container')}/{found.group('path') or ''}".rstrip("/")
        return RemoteUri(uri, "az", path, found.group("account"))
    found = _BUCKET.match(uri)
    if found:
        protocol = "s3" if found.group("scheme") == "s3" else "gcs"
        path = f"{found.group('bucket')}/{found.group('path') or ''}".rstrip("/")
        return RemoteUri(uri, protocol, path)
    return None


def _import(remote: RemoteUri) -> Any:
    import importlib

    try:
        return importlib.import_module(remote.module)
    except ImportError as exc:
        raise MissingExtraError(remote.module, remote.extra) from exc


def _connection_string_field(name: str) -> str | None:
    text = os.environ.get("AZURE_STORAGE_CONNECTION_STRING") or ""
    for part in text.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def _endpoint(remote: RemoteUri) -> tuple[str, int]:
    """The host and port the file system will talk to."""
    if remote.protocol == "az":
        url = _connection_string_field("BlobEndpoint") if _azure_secret() else None
        url = url or f"https://{remote.account}.blob.core.windows.net"
    elif remote.protocol == "s3":
        url = (
            os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or "https://s3.amazonaws.com"
        )
    else:
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        url = emulator if emulator and "://" in emulator else "https://storage.googleapis.com"
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _probe(remote: RemoteUri) -> None:
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return
    host, port = _endpoint(remote)
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {remote.uri}: cannot reach {host}:{port} ({exc.strerror or exc})",
            hint="this machine has no network path to that storage: copy the data to a "
            "local folder and point the input at it, or register that folder as a "
            "datastore (targets datastores add NAME --path DIR) or a data asset "
            "(targets data create --name NAME --version 1 --path DIR)",
        ) from exc


def _azure_secret() -> bool:
    return any(
        os.environ.get(v)
        for v in (
            "AZURE_STORAGE_CONNECTION_STRING",
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_SAS_TOKEN",
            "AZURE_STORAGE_CLIENT_ID",
        )
    )


def _azure(remote: RemoteUri, *, anonymous: bool) -> Any:
    named = _connection_string_field("AccountName")
    if named and named != remote.account:
        raise ConfigError(
            f"cannot read {remote.uri}: AZURE_STORAGE_CONNECTION_STRING is for the storage "
            f"account {named!r}, not {remote.account!r}",
            hint="set AZURE_STORAGE_CONNECTION_STRING to the connection string of "
            f"{remote.account!r}, or unset it to use your Azure login",
        )
    adlfs = _import(remote)
    kwargs: dict[str, Any] = {"account_name": remote.account, "skip_instance_cache": True}
    if not _azure_secret() and os.environ.get("AZURE_STORAGE_ANON") is None:
        kwargs["anon"] = anonymous
    return adlfs.AzureBlobFileSystem(**kwargs)


def _s3(remote: RemoteUri) -> Any:
    s3fs = _import(remote)
    import botocore.session  # type: ignore[import-untyped]

    anonymous = botocore.session.Session().get_credentials() is None
    return s3fs.S3FileSystem(anon=anonymous, skip_instance_cache=True)


def _gcs(remote: RemoteUri) -> Any:
    gcsfs = _import(remote)
    return gcsfs.GCSFileSystem(skip_instance_cache=True)


def open_filesystem(remote: RemoteUri, *, anonymous: bool = True) -> Any:
    """An fsspec file system for ``remote`` with the user's credentials, after checking
    that its host can be reached (ConfigError naming the URL otherwise) and that the
    extra is installed (MissingExtraError). For Azure without a secret in the
    environment, ``anonymous`` chooses between public access and azure-identity's chain.
    """
    _import(remote)
    _probe(remote)
    if remote.protocol == "az":
        return _azure(remote, anonymous=anonymous)
    if remote.protocol == "s3":
        return _s3(remote)
    return _gcs(remote)


def needs_login(exc: BaseException) -> bool:
    """Whether ``exc`` says the request lacked rights (so another credential may do)."""
    if isinstance(exc, PermissionError):
        return True
    with contextlib.suppress(ImportError):
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

        if isinstance(exc, ClientAuthenticationError):
            return True
        if isinstance(exc, HttpResponseError) and exc.status_code in (401, 403, 409):
            return True
    return False


@contextlib.contextmanager
def translated_errors(remote: RemoteUri, doing: str = "read") -> Iterator[None]:
    """Turn the storage libraries' errors into ConfigError (exit 2) naming the URI."""
    try:
        yield
    except ConfigError:
        raise
    except FileNotFoundError as exc:
        raise ConfigError(
            f"cannot {doing} {remote.uri}: it does not exist",
            hint="check the container or bucket and the path",
        ) from exc
    except Exception as exc:
        if needs_login(exc):
            raise ConfigError(
                f"cannot {doing} {remote.uri}: access denied ({_short(exc)})",
                hint=_CREDENTIALS[remote.protocol],
            ) from exc
        if _no_credentials(exc):
            raise ConfigError(
                f"cannot {doing} {remote.uri}: no credentials ({_short(exc)})",
                hint=_CREDENTIALS[remote.protocol],
            ) from exc
        raise ConfigError(
            f"cannot {doing} {remote.uri}: {type(exc).__name__}: {_short(exc)}",
            hint="check the network path to the storage and your credentials: "
            + _CREDENTIALS[remote.protocol],
        ) from exc


def _no_credentials(exc: BaseException) -> bool:
    with contextlib.suppress(ImportError):
        from botocore.exceptions import NoCredentialsError  # type: ignore[import-untyped]

        if isinstance(exc, NoCredentialsError):
            return True
    with contextlib.suppress(ImportError):
        from azure.core.exceptions import ClientAuthenticationError

        if isinstance(exc, ClientAuthenticationError):
            return True
    return False


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


_CREDENTIALS = {
    "az": "sign in with `az login` (azure-identity's DefaultAzureCredential), or set "
    "AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN",
    "s3": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)",
    "gcs": "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS",
}
