"""Data assets registered in the workspace: ``azureml:NAME:VERSION`` and
``azureml:NAME@latest`` in a job's inputs.

``targets data create --name iris --version 1 --path wasbs://...`` (or ``--file data.yml``,
an Azure ML v2 data YAML) records the asset in ``.targets/data/NAME/VERSION.yml``:
``name``, ``version``, ``type`` (``uri_file``, ``uri_folder`` or ``mltable``), ``path``
and ``description``. A local path is recorded as an absolute path (checked to exist and
to match the type); a cloud URI, an ``http(s)`` URL or an ``azureml://datastores/`` URI is
kept as written and read when a job uses it.

Design choice: a local path is referenced, not copied (Azure ML uploads it to the
workspace's storage). A version is immutable, as in Azure ML: registering NAME:VERSION
again with another path or type is refused; with the same ones it changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from targets.errors import ConfigError, UsageError
from targets.workspace import Workspace

__all__ = [
    "DATA_TYPES",
    "DataAsset",
    "DataAssetSpec",
    "get_data",
    "list_data",
    "parse_data_ref",
    "register_data",
]

DATA_TYPES = ("uri_file", "uri_folder", "mltable")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_SHORT_REF = re.compile(
    r"^azureml:(?P<name>[^:@/]+)(?::(?P<version>[^:@/]+)|@(?P<label>[^:@/]+))?$"
)
_LONG_REF = re.compile(
    r"^azureml://(?:[^/]+/[^/]+/)*data/(?P<name>[^/]+)"
    r"(?:/versions/(?P<version>[^/]+)|/labels/(?P<label>[^/]+))$"
)


class DataAssetSpec(BaseModel):
    """An Azure ML v2 data asset YAML (``az ml data create --file``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str | None = Field(default=None, alias="$schema")
    name: str
    version: str | int | None = None
    type: str = "uri_folder"
    path: str
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DataAsset:
    name: str
    version: str
    type: str
    path: str
    """An absolute local path, or a URI as registered."""
    description: str | None
    record: Path


def _root(ws: Workspace) -> Path:
    return ws.dir / "data"


def _is_uri(path: str) -> bool:
    return "://" in path


def _check_local(path: Path, kind: str, where: str) -> None:
    if not path.exists():
        raise UsageError(f"{where}: {path} does not exist")
    if kind == "uri_file" and not path.is_file():
        raise UsageError(f"{where}: {path} is a folder, but the type is uri_file")
    if kind != "uri_file" and not path.is_dir():
        raise UsageError(f"{where}: {path} is a file, but the type is {kind}")
    if kind == "mltable" and not (path / "MLTable").is_file():
        raise UsageError(
            f"{where}: {path} has no MLTable file",
            hint="an mltable asset is a folder holding a file named MLTable",
        )


def register_data(ws: Workspace, spec: DataAssetSpec, base: Path) -> DataAsset:
    """Register ``spec`` (a relative local ``path`` is relative to ``base``). The version
    defaults to one more than the highest numeric one. Raises UsageError for an invalid
    name, type or path and for a version registered already with other values."""
    if not _NAME.match(spec.name):
        raise UsageError(
            f"invalid data asset name {spec.name!r}: use letters, digits, '.', '_', '-'"
        )
    if spec.type not in DATA_TYPES:
        raise UsageError(
            f"data asset type {spec.type!r} is not supported; use one of {', '.join(DATA_TYPES)}"
        )
    path = spec.path
    if path.startswith("file://"):
        path = path.removeprefix("file://")
    if not _is_uri(path):
        local = (base / path).expanduser().resolve()
        _check_local(local, spec.type, f"data asset {spec.name}")
        path = str(local)
    else:
        from targets.data.uris import parse_uri

        if not (
            parse_uri(path) or path.startswith(("http://", "https://", "azureml://datastores/"))
        ):
            raise UsageError(
                f"data asset {spec.name}: {path!r} is not a path targets can read",
                hint="give a local path, a wasbs://, abfss://, https://, s3:// or gs:// URI, "
                "or azureml://datastores/NAME/paths/...",
            )
    existing = [a for a in list_data(ws) if a.name == spec.name]
    if spec.version is None:
        numbers = [int(a.version) for a in existing if a.version.isdigit()]
        version = str(max(numbers, default=0) + 1)
    else:
        version = str(spec.version)
    if not _NAME.match(version):
        raise UsageError(f"invalid version {version!r}")
    record = {"name": spec.name, "version": version, "type": spec.type, "path": path}
    if spec.description:
        record["description"] = spec.description
    for asset in existing:
        if asset.version == version:
            if (asset.type, asset.path) == (spec.type, path):
                return asset
            raise UsageError(
                f"data asset {spec.name}:{version} is registered already with {asset.type} "
                f"{asset.path}",
                hint="a version never changes: register a new version",
            )
    folder = _root(ws) / spec.name
    ws.ensure()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{version}.yml").write_text(yaml.safe_dump(record, sort_keys=False))
    return get_data(ws, spec.name, version)


def load_spec(file: Path) -> DataAssetSpec:
    """Read a v2 data asset YAML; ConfigError names the file and the key."""
    from targets.runconfig.io import load_yaml_file

    data = load_yaml_file(file, "data asset")
    if not isinstance(data, dict):
        raise ConfigError("a data asset file is a mapping", path=str(file))
    try:
        return DataAssetSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(first["msg"], path=str(file), key_path=key) from exc


def list_data(ws: Workspace) -> list[DataAsset]:
    root = _root(ws)
    found = []
    for record in sorted(root.glob("*/*.yml")) if root.is_dir() else ():
        data = yaml.safe_load(record.read_text()) or {}
        found.append(
            DataAsset(
                name=str(data["name"]),
                version=str(data["version"]),
                type=str(data.get("type", "uri_folder")),
                path=str(data["path"]),
                description=data.get("description"),
                record=record,
            )
        )
    return found


def _order(asset: DataAsset) -> tuple[bool, int, str]:
    return (
        asset.version.isdigit(),
        int(asset.version) if asset.version.isdigit() else 0,
        asset.version,
    )


def get_data(ws: Workspace, name: str, version: str | None) -> DataAsset:
    """NAME:VERSION, or the highest version for None or ``latest``; ConfigError (exit 2)
    saying how to register it when there is none."""
    candidates = [a for a in list_data(ws) if a.name == name]
    wanted = version not in (None, "latest")
    if wanted:
        candidates = [a for a in candidates if a.version == version]
    if not candidates:
        what = f"{name}:{version}" if wanted else name
        known = sorted({f"{a.name}:{a.version}" for a in list_data(ws)})
        raise ConfigError(
            f"the data asset {what!r} is not registered in this workspace"
            f" (registered: {', '.join(known) or 'none'})",
            hint=f"targets data create --name {name} --version {version if wanted else 1} "
            "--path LOCAL_PATH_OR_URI --type uri_file|uri_folder|mltable",
        )
    return max(candidates, key=_order)


def parse_data_ref(ref: str) -> tuple[str, str | None] | None:
    """``(name, version or label)`` of an ``azureml:`` data reference, else None.

    ``azureml:NAME`` with no version is returned with version None; the caller decides
    (an input needs one)."""
    found = _SHORT_REF.match(ref) or _LONG_REF.match(ref)
    if not found:
        return None
    return found.group("name"), found.group("version") or found.group("label")
