"""Where a job's data input comes from, as a local file or folder to ship with the run.

- a local path: itself (relative to the job file);
- ``wasbs://``, ``abfss://``, ``https://A.blob.core.windows.net/...``, ``s3://``, ``gs://``:
  :func:`targets.data.fetch.fetch` (cached, kept in step);
- another ``http(s)://`` URL: the caller's downloader (cached, revalidated);
- ``azureml://datastores/NAME/paths/P``: ``DIR/P`` of the registered datastore;
- ``azureml:NAME:VERSION``, ``azureml:NAME@latest``, ``azureml://.../data/NAME/versions/V``:
  the registered data asset's path, read as above.

For ``type: mltable`` the folder is then made self-contained
(:func:`targets.data.mltable.materialize_mltable`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from targets.errors import ConfigError
from targets.workspace import Workspace

__all__ = ["is_cloud", "local_copy", "resolve_asset"]


def resolve_asset(
    ws: Workspace, path: str, kind: str | None, key_path: str
) -> tuple[str, str | None]:
    """``(path, type)``: a data asset reference replaced by the asset's path and type;
    any other path unchanged (type None). ConfigError when the asset is unknown, has no
    version, or its type differs from the input's."""
    if not path.startswith("azureml:") or path.startswith("azureml://datastores/"):
        return path, None
    from targets.data.assets import get_data, parse_data_ref

    ref = parse_data_ref(path)
    if ref is None:
        raise ConfigError(
            f"{path!r} is not a data reference targets understands",
            key_path=key_path,
            hint="use azureml:NAME:VERSION or azureml:NAME@latest for a data asset "
            "(targets data create), or azureml://datastores/NAME/paths/... for a datastore",
        )
    name, version = ref
    if version is None:
        raise ConfigError(
            f"the data asset {path!r} names no version",
            key_path=key_path,
            hint=f"write azureml:{name}@latest or azureml:{name}:VERSION",
        )
    asset = get_data(ws, name, version)
    if kind is not None and kind != asset.type and kind in ("uri_file", "uri_folder", "mltable"):
        raise ConfigError(
            f"the data asset {asset.name}:{asset.version} is a {asset.type}, but the input "
            f"is a {kind}",
            key_path=key_path,
            hint=f"set the input's type to {asset.type}",
        )
    return asset.path, asset.type


def is_cloud(path: str) -> bool:
    """Whether ``path`` is read through a cloud file system (see targets.data.uris)."""
    from targets.data.uris import parse_uri

    remote = parse_uri(path)
    if remote is None:
        return False
    # A public blob file over https worked before adlfs was an extra: without adlfs it
    # is still downloaded as a plain URL.
    return not (path.startswith("https://") and importlib.util.find_spec("adlfs") is None)


def local_copy(
    ws: Workspace,
    path: str,
    *,
    kind: str | None,
    key_path: str,
    local: Callable[[str], Path],
    http: Callable[[str], Path],
) -> Path:
    """The local file or folder for the input ``path`` (see the module's table).

    ``local(p)`` resolves a local path, ``http(url)`` downloads a URL. Blocks while
    downloading. Raises ConfigError (exit 2) naming what cannot be read and why."""
    path, asset_kind = resolve_asset(ws, path, kind, key_path)
    kind = kind or asset_kind

    def locate(value: str) -> Path | None:
        if is_cloud(value):
            from targets.data.fetch import fetch
            from targets.data.uris import parse_uri

            remote = parse_uri(value)
            assert remote is not None  # is_cloud said so
            return fetch(ws, remote)
        if value.startswith(("http://", "https://")):
            return http(value)
        if value.startswith("azureml://datastores/"):
            from targets.assets import resolve_datastore_uri

            return resolve_datastore_uri(ws, value)
        if "://" in value or value.startswith("azureml:"):
            raise ConfigError(
                f"{value!r} cannot be read here; targets reads local paths, wasbs://, "
                "abfss://, https://, s3:// and gs:// URIs, azureml://datastores/NAME/paths/... "
                "and azureml:NAME:VERSION data assets",
                key_path=key_path,
                hint="download the data and point the input at a local path or a datastore "
                "(targets datastores add NAME --path DIR)",
            )
        return None

    try:
        found = locate(path)
    except ConfigError as exc:
        if exc.key_path is None:
            raise ConfigError(exc.message, key_path=key_path, hint=exc.hint) from exc
        raise
    if found is None:
        found = local(path)
    if kind == "mltable":
        from targets.data.mltable import materialize_mltable

        if not found.exists():
            raise ConfigError(f"{found} does not exist", key_path=key_path)
        return materialize_mltable(ws, found, locate, key_path)
    return found
