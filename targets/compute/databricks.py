"""The ``databricks`` target: one-time runs (``jobs/runs/submit``) in a Databricks workspace.

Built on ``databricks-sdk`` (the ``databricks`` extra), imported lazily: ``targets --help``
and every other kind work without it.

A submit does, in order:

1. check the run can be expressed on Databricks (no Docker, no conda-only packages) --
   before anything is uploaded;
2. upload each snapshot file not already there to the workspace files folder
   ``/Users/<me>/.targets/objects/<sha256>`` (one ``workspace/list`` tells what is present,
   so an unchanged snapshot uploads nothing), and so the run library's files (Azure ML
   v1's ``azureml.core.Run`` inside the run) unless the run keeps the real SDK
   (``TARGETS_AZUREML_REAL=1``);
3. upload ``spec.json`` (the manifest: path -> digest, the run library's rows, the entry
   point, the arguments, variables and experiment) and ``_targets_wrapper.py`` into
   ``/Users/<me>/.targets/runs/<run_id>/``;
4. ``jobs/runs/submit`` a one-time run of one ``spark_python_task`` running the wrapper on
   the attached cluster (or a new job cluster), with the environment's pip packages and
   Spark packages as run libraries and ``max_run_duration_seconds`` as ``timeout_seconds``.

On the driver the wrapper copies the objects into a local run folder by the manifest,
puts the run library first on the path with the variables it reads (its MLflow store is
the run folder's ``.targets/mlruns``), changes into it, runs the user's script with its
arguments (``runpy``, ``sys.argv``) or command (a list as an argv, a string through
``/bin/sh -c``, as on every kind) and copies ``./outputs``, ``./logs`` and the MLflow
store (as ``mlruns/``) to the run's workspace folder (through the ``/Workspace`` file
system of the driver), also after a failure or a cancel; it records the exit code in
``exit.json`` there. A file larger than :data:`PART_BYTES` goes as parts
(``parts/<path>/000000``...) listed with its size and SHA-256 in ``parts.json``: the
workspace export API the client downloads with returns at most 10 MB.

Design choice: workspace files rather than a Unity Catalog volume. Workspace files exist
in every workspace (volumes need Unity Catalog and a catalog/schema the user may write
to), are addressed by the user's own folder (no extra attach option), and are readable and
writable from the driver as ``/Workspace/...`` (Databricks Runtime 13.3 LTS and later). The
cost is the import API's 10 MB request limit: a larger file is refused before anything is
uploaded (a volume would lift it; see docs/targets/databricks.md).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import posixpath
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from targets.agent.protocol import ManifestRow, manifest_rows
from targets.agent.supervisor import RUN_LIBRARY
from targets.compute._databricks_wrapper import COLLECTED, RUN_LIBRARY_FOLDER, ExitInfo, WrapperSpec
from targets.compute._databricks_wrapper import WRAPPER as _WRAPPER
from targets.compute.base import (
    Capability,
    ComputeTarget,
    LogChunk,
    Progress,
    RunHandle,
    RunState,
    RunStatus,
    SubmitRequest,
    TargetContext,
    no_progress,
)
from targets.environments import keeps_real_sdk
from targets.errors import (
    AuthenticationError,
    ConnectionFailed,
    MissingExtraError,
    TargetsError,
    UsageError,
)

__all__ = ["DatabricksAPIError", "DatabricksOptions", "DatabricksTarget", "parse_cluster_spec"]

#: Fields a ``--new-cluster`` spec must have, and the optional ones it may have.
REQUIRED_CLUSTER_FIELDS = ("spark_version", "node_type_id", "num_workers")
OPTIONAL_CLUSTER_FIELDS = (
    "driver_node_type_id",
    "instance_pool_id",
    "policy_id",
    "runtime_engine",
    "data_security_mode",
    "single_user_name",
)
#: The import API takes at most 10 MB of base64 per request: 3/4 of that is raw bytes.
MAX_IMPORT_BYTES = 10 * 1024 * 1024 * 3 // 4
#: The workspace export API returns at most 10 MB of base64 (``MAX_NOTEBOOK_SIZE_EXCEEDED``):
#: the wrapper stores an output file larger than this as parts of this size.
PART_BYTES = 4 * 1024 * 1024
#: How long one call keeps retrying answers that say "later" (429, 500, 503, 504).
RETRY_SECONDS = 60.0
#: Put where Databricks cut the driver output (``runs/get-output`` returns its first 5 MB).
TRUNCATED_NOTE = (
    "[targets: Databricks returns only the first 5 MB of a run's driver output; the rest "
    "is cut here. Write large output to ./logs or ./outputs: those come back whole]\n"
)
WRAPPER_NAME = "_targets_wrapper.py"
#: Where the driver sees workspace files.
WORKSPACE_MOUNT = "/Workspace"
_TERMINAL_LIFE_CYCLES = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}
_T = TypeVar("_T")


class DatabricksAPIError(TargetsError):
    """The Databricks REST API refused or failed a request; the message is Databricks'."""


def parse_cluster_spec(value: str) -> dict[str, str | int]:
    """``"spark_version=15.4.x-scala2.12,node_type_id=Standard_DS3_v2,num_workers=2"`` ->
    a dict. Raises ``ValueError`` naming a missing, unknown or malformed field."""
    spec: dict[str, str | int] = {}
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        key, eq, raw = part.partition("=")
        key, raw = key.strip(), raw.strip()
        if not eq or not key or not raw:
            raise ValueError(f"{part!r} is not key=value")
        spec[key] = raw
    return _checked_cluster_spec(spec)


def _checked_cluster_spec(spec: Mapping[str, Any]) -> dict[str, str | int]:
    known = set(REQUIRED_CLUSTER_FIELDS) | set(OPTIONAL_CLUSTER_FIELDS)
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    missing = [k for k in REQUIRED_CLUSTER_FIELDS if k not in spec]
    if missing:
        raise ValueError(
            f"missing field(s) {', '.join(missing)} "
            "(give spark_version=...,node_type_id=...,num_workers=N)"
        )
    out: dict[str, str | int] = {k: str(v) for k, v in spec.items()}
    try:
        workers = int(str(spec["num_workers"]))
    except ValueError:
        raise ValueError(f"num_workers={spec['num_workers']!r} is not a whole number") from None
    if workers < 0:
        raise ValueError("num_workers must be 0 or more")
    out["num_workers"] = workers
    return out


class DatabricksOptions(BaseModel):
    """``targets attach NAME --type databricks ...`` options. The token is a secret
    (``--token-stdin``), kept in the keyring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str | None = Field(
        default=None, description="Workspace URL, e.g. https://adb-123.4.azuredatabricks.net."
    )
    workspace_name: str | None = Field(
        default=None, description="Azure Databricks workspace name (with --resource-group)."
    )
    resource_group: str | None = Field(default=None, description="Its Azure resource group.")
    subscription: str | None = Field(
        default=None, description="Its Azure subscription (default: AZURE_SUBSCRIPTION_ID)."
    )
    cluster_id: str | None = Field(
        default=None,
        description="An existing cluster to run on (default: the run's "
        "environment.databricks.cluster).",
    )
    new_cluster: dict[str, str | int] | None = Field(
        default=None,
        description="A new job cluster per run: spark_version=...,node_type_id=...,num_workers=N "
        "(default: the run's environment.databricks.cluster).",
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if value is None:
            return None
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ValueError("give the workspace URL, starting with https://")
        if not parts.hostname or parts.path or parts.query:
            raise ValueError(
                "give the workspace URL only, e.g. https://adb-123.4.azuredatabricks.net"
            )
        return value

    @field_validator("new_cluster", mode="before")
    @classmethod
    def _new_cluster(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_cluster_spec(value)
        if isinstance(value, Mapping):
            return _checked_cluster_spec(value)
        return value

    @model_validator(mode="after")
    def _one_cluster(self) -> DatabricksOptions:
        if self.cluster_id is not None and self.new_cluster is not None:
            raise ValueError("give at most one of --cluster-id ID or --new-cluster SPEC")
        by_name = self.workspace_name is not None or self.resource_group is not None
        if by_name and (self.workspace_name is None or self.resource_group is None):
            raise ValueError("give --workspace-name and --resource-group together")
        if (self.host is None) == (not by_name):
            raise ValueError("give either --host URL or --workspace-name NAME --resource-group RG")
        return self


# -- the run's own cluster (Azure ML v1's environment.databricks.cluster) ------------------

#: v1's ``DatabricksCluster`` fields (and Databricks' own names for two of them) -> the
#: Jobs API's ``new_cluster`` fields.
_RUN_CLUSTER_FIELDS = {
    "spark_version": "spark_version",
    "node_type": "node_type_id",
    "node_type_id": "node_type_id",
    "instance_pool_id": "instance_pool_id",
    "num_workers": "num_workers",
    "spark_env_variables": "spark_env_vars",
    "spark_env_vars": "spark_env_vars",
    "spark_conf": "spark_conf",
}
_RUN_CLUSTER_OTHER = (
    "existing_cluster_id",
    "min_workers",
    "max_workers",
    "init_scripts",
    "cluster_log_dbfs_path",
)
NO_CLUSTER_HINT = (
    "give the run a cluster: environment.databricks.cluster with existing_cluster_id, or "
    "spark_version, node_type and num_workers (Python: run_config.environment.databricks"
    ".cluster = {...}; a DatabricksStep's existing_cluster_id or spark_version/node_type/"
    "num_workers), or attach the target again with --cluster-id ID or --new-cluster SPEC"
)


def run_cluster(given: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """``(existing_cluster_id, None)`` or ``(None, new_cluster)`` for a run's
    ``environment.databricks.cluster`` (Azure ML v1's ``DatabricksCluster``). Raises a
    UsageError naming a field that is unknown, missing or of the wrong type."""
    values = {k: v for k, v in given.items() if v is not None}
    where = "environment.databricks.cluster"
    unknown = sorted(set(values) - set(_RUN_CLUSTER_FIELDS) - set(_RUN_CLUSTER_OTHER))
    if unknown:
        known = sorted(set(_RUN_CLUSTER_FIELDS) | set(_RUN_CLUSTER_OTHER))
        raise UsageError(
            f"{where} has unknown field(s) {', '.join(unknown)}",
            hint="known: " + ", ".join(known),
        )
    existing = values.pop("existing_cluster_id", None)
    if existing is not None:
        if values:
            raise UsageError(
                f"{where}: existing_cluster_id goes alone, not with {', '.join(sorted(values))}"
            )
        if not isinstance(existing, str) or not existing:
            raise UsageError(f"{where}: existing_cluster_id must be a cluster id (a string)")
        return existing, None
    if not values:
        raise UsageError(f"{where} is empty", hint=NO_CLUSTER_HINT)
    spec: dict[str, Any] = {
        _RUN_CLUSTER_FIELDS[k]: v for k, v in values.items() if k in _RUN_CLUSTER_FIELDS
    }
    low, high = values.get("min_workers"), values.get("max_workers")
    if (low is None) != (high is None) or (low is not None and "num_workers" in spec):
        raise UsageError(f"{where}: give num_workers, or min_workers and max_workers together")
    if low is not None:
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (low, high)):
            raise UsageError(f"{where}: min_workers and max_workers must be whole numbers")
        spec["autoscale"] = {"min_workers": low, "max_workers": high}
    elif "num_workers" not in spec:
        raise UsageError(f"{where}: give num_workers, or min_workers and max_workers")
    if "spark_version" not in spec:
        raise UsageError(f"{where}: give spark_version (e.g. 15.4.x-scala2.12)")
    if "node_type_id" not in spec and "instance_pool_id" not in spec:
        raise UsageError(f"{where}: give node_type (e.g. Standard_DS3_v2) or instance_pool_id")
    scripts = values.get("init_scripts")
    if scripts is not None:
        if not isinstance(scripts, list) or not all(isinstance(p, str) for p in scripts):
            raise UsageError(f"{where}: init_scripts must be a list of DBFS paths")
        spec["init_scripts"] = [{"dbfs": {"destination": p}} for p in scripts]
    log_path = values.get("cluster_log_dbfs_path")
    if log_path is not None:
        spec["cluster_log_conf"] = {"dbfs": {"destination": str(log_path)}}
    return None, spec


# -- the wrapper that runs on the driver ---------------------------------------------------


def wrapper_source() -> str:
    """The wrapper's Python source (uploaded with each run)."""
    return _WRAPPER


@functools.cache
def run_library_files() -> tuple[tuple[ManifestRow, Path], ...]:
    """The run library's files (``azureml``, the agent's ``runlib``) as manifest rows
    below :data:`RUN_LIBRARY_FOLDER`, each with the file it is read from. The wrapper
    materialises them next to the snapshot and puts them first on the script's path, so
    that an unchanged Azure ML v1 script's ``Run.get_context()`` works on the driver."""
    root = Path(RUN_LIBRARY)
    files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    if not files:
        raise TargetsError(f"the run library is missing from this installation ({root})")
    rows = []
    for path in files:
        data = path.read_bytes()
        rel = f"{RUN_LIBRARY_FOLDER}/{path.relative_to(root).as_posix()}"
        digest = hashlib.sha256(data).hexdigest()
        rows.append((ManifestRow(rel, len(data), 0o644, digest, None), path))
    return tuple(rows)


def _replace(
    local: Path,
    reads: Sequence[Callable[[], bytes]],
    check: Callable[[int, str], None] | None = None,
) -> None:
    """Write what ``reads`` return, in order, to ``local`` through a uniquely named
    temporary file in the same folder, then replace ``local`` with it. ``check(size,
    sha256)`` may refuse what was written by raising; then, as when a read fails,
    ``local`` is left as it was and nothing else is left behind."""
    local.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".part", dir=local.parent)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out:
            for read in reads:
                data = read()
                out.write(data)
                digest.update(data)
                size += len(data)
        if check is not None:
            check(size, digest.hexdigest())
        os.replace(tmp, local)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- the kind ------------------------------------------------------------------------------


class _DatabricksHandleRequired(TypedDict):
    databricks_run_id: int
    folder: str
    """The run's workspace folder."""


class DatabricksHandleData(_DatabricksHandleRequired, total=False):
    """The ``data`` of a Databricks run's handle (see :func:`_handle_data`)."""

    max_run_duration_seconds: float | None
    uploaded: int


def _handle_data(handle: RunHandle) -> DatabricksHandleData:
    """The typed view of a Databricks handle's ``data``; a UsageError when the run id or
    folder is missing (a handle not made by this kind)."""
    raw = handle.data
    given, folder = raw.get("databricks_run_id"), raw.get("folder")
    run_id = int(given) if isinstance(given, (int, str)) and str(given).isdigit() else None
    if run_id is None or not isinstance(folder, str) or not folder:
        raise UsageError(
            f"run {handle.run_id} has no Databricks run id and folder in its handle",
            hint="it was not submitted to a databricks target; submit it again",
        )
    data = DatabricksHandleData(databricks_run_id=run_id, folder=folder)
    limit = raw.get("max_run_duration_seconds")
    if isinstance(limit, (int, float)) and not isinstance(limit, bool):
        data["max_run_duration_seconds"] = float(limit)
    uploaded = raw.get("uploaded")
    if type(uploaded) is int:
        data["uploaded"] = uploaded
    return data


class DatabricksTarget(ComputeTarget):
    """A Databricks workspace: an existing cluster, or a new job cluster per run.

    Creating it opens nothing; the SDK client is made on first use. ``close`` is
    idempotent. Every SDK error becomes a :class:`TargetsError` carrying Databricks'
    message: a refused token is :class:`AuthenticationError`.
    """

    kind = "databricks"
    description = "a Databricks workspace (one-time runs on a cluster or a new job cluster)"
    options_model = DatabricksOptions
    capabilities = frozenset({Capability.SPARK, Capability.CANCEL, Capability.LIVE_LOGS})
    secret_names = ("token",)

    _client: Any = None
    _me: str | None = None

    def __init__(
        self, name: str, options: BaseModel | None = None, context: TargetContext | None = None
    ) -> None:
        super().__init__(name, options, context)
        self._finished: dict[str, dict[str, Any]] = {}

    @property
    def opts(self) -> DatabricksOptions:
        if not isinstance(self.options, DatabricksOptions):
            raise TypeError(f"{type(self).__name__} needs DatabricksOptions")
        return self.options

    # -- connection ----------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The workspace URL: given, or looked up once through Azure Resource Manager
        (then remembered in the workspace's state folder)."""
        if self.opts.host:
            return self.opts.host
        import json

        cache = self.context.state_dir / "databricks-hosts.json"
        key = (
            f"{self.opts.subscription or ''}/{self.opts.resource_group}/{self.opts.workspace_name}"
        )
        known = json.loads(cache.read_text()) if cache.exists() else {}
        if key not in known:
            from targets.compute.azure_lookup import resolve_databricks_host

            assert self.opts.workspace_name and self.opts.resource_group  # options validated
            known[key] = resolve_databricks_host(
                self.opts.subscription, self.opts.resource_group, self.opts.workspace_name
            )
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(known, indent=1))
        return str(known[key])

    def client(self) -> Any:
        """The ``WorkspaceClient``, made on first use."""
        if self._client is None:
            try:
                from databricks.sdk import WorkspaceClient
                from databricks.sdk.config import Config
            except ImportError as exc:
                raise MissingExtraError("databricks-sdk", "databricks") from exc
            token = self.context.secret("token")
            if not token:
                raise UsageError(
                    f"no Databricks token is stored for target {self.name!r}",
                    hint=f"targets attach {self.name} --type databricks ... --token-stdin --force",
                )
            with self._translated("connecting"):
                config = Config(
                    host=self.host, token=token, auth_type="pat", retry_timeout_seconds=30
                )
                self._client = WorkspaceClient(config=config)
        return self._client

    def close(self) -> None:
        self._client = None

    @contextmanager
    def _translated(self, doing: str) -> Iterator[None]:
        """Turn SDK and transport errors into ours, keeping Databricks' message."""
        try:
            yield
        except TargetsError:
            raise
        except Exception as exc:
            raise self._translate(exc, doing) from exc

    def _translate(self, exc: Exception, doing: str) -> TargetsError:
        try:
            from databricks.sdk import errors
            from databricks.sdk.errors.base import DatabricksError
        except ImportError:  # pragma: no cover - client() checked it
            return DatabricksAPIError(f"{doing}: {exc}")
        host = self.opts.host or self.opts.workspace_name
        if isinstance(exc, errors.Unauthenticated | errors.PermissionDenied):
            return AuthenticationError(
                f"Databricks at {host} refused the token while {doing}: {exc}",
                hint=f"create a new personal access token and attach again: targets attach "
                f"{self.name} --type databricks ... --token-stdin --force",
            )
        if isinstance(exc, DatabricksError):
            return DatabricksAPIError(f"Databricks at {host} failed while {doing}: {exc}")
        import requests

        if isinstance(exc, requests.RequestException | OSError):
            return ConnectionFailed(f"cannot reach Databricks at {host} while {doing}: {exc}")
        return DatabricksAPIError(f"Databricks at {host} failed while {doing}: {exc}")

    def _retry(self, call: Callable[[], _T]) -> _T:
        """``call()``, again while Databricks answers "later": 429 and 503 after the SDK's
        own retries (which honour ``Retry-After``), 500 and 504 (which it does not retry).
        Waits ``Retry-After`` when the SDK passes it on (429, 503), else 0.25 s doubling to
        8 s; gives up after :data:`RETRY_SECONDS` and raises the last error.

        Design choice: every call this kind makes may be repeated -- imports overwrite,
        mkdirs and cancel are idempotent, and a submit carries an idempotency token -- so
        a request whose answer was lost to a 5xx is safe to send again."""
        from databricks.sdk import errors

        later = (
            errors.TooManyRequests,
            errors.TemporarilyUnavailable,
            errors.DeadlineExceeded,
            errors.InternalError,
        )
        deadline = time.monotonic() + RETRY_SECONDS
        delay = 0.25
        while True:
            try:
                return call()
            except later as exc:
                if isinstance(exc, errors.DataLoss):
                    raise
                after = exc.retry_after_secs
                wait = float(after) if after is not None and after >= 0 else delay
                if time.monotonic() + wait > deadline:
                    raise
                time.sleep(wait)
                delay = min(delay * 2, 8.0)

    def _user(self) -> str:
        if self._me is None:
            with self._translated("checking the token"):
                me = self._retry(self.client().current_user.me)
            self._me = str(me.user_name)
        return self._me

    def _root(self) -> str:
        return f"/Users/{self._user()}/.targets"

    # -- attach --------------------------------------------------------------------------

    def probe(self) -> dict[str, Any]:
        """Check the token (who am I) and the cluster; return facts. Raises
        :class:`AuthenticationError` for a refused token and :class:`UsageError` for an
        unknown cluster id."""
        facts: dict[str, Any] = {"host": self.host, "user": self._user()}
        if self.opts.cluster_id is not None:
            from databricks.sdk import errors

            try:
                cluster_id = self.opts.cluster_id
                cluster = self._retry(lambda: self.client().clusters.get(cluster_id))
            except (errors.InvalidParameterValue, errors.NotFound) as exc:
                raise UsageError(
                    f"Databricks cluster {self.opts.cluster_id!r} does not exist at "
                    f"{self.host}: {exc}",
                    hint="copy the cluster id from the cluster's page (Compute > cluster > "
                    "Advanced options > Tags), or use --new-cluster",
                ) from exc
            except Exception as exc:
                raise self._translate(exc, "looking up the cluster") from exc
            facts["cluster"] = {
                "id": self.opts.cluster_id,
                "name": cluster.cluster_name,
                "spark_version": cluster.spark_version,
                "state": cluster.state.value if cluster.state is not None else None,
            }
        elif self.opts.new_cluster is not None:
            facts["new_cluster"] = dict(self.opts.new_cluster)
        else:
            facts["cluster"] = "each run names its own (environment.databricks.cluster)"
        return facts

    # -- submit --------------------------------------------------------------------------

    def _cluster_for(self, request: SubmitRequest) -> tuple[str | None, dict[str, Any] | None]:
        """The run's own cluster (``environment.databricks.cluster``), else the attached
        one; a UsageError naming how to give one when there is neither."""
        section = request.config.environment.databricks
        if section is not None and section.cluster:
            return run_cluster(section.cluster)
        if self.opts.cluster_id is not None:
            return self.opts.cluster_id, None
        if self.opts.new_cluster is not None:
            return None, dict(self.opts.new_cluster)
        raise UsageError(
            f"target {self.name!r} was attached without a cluster (as Azure ML v1 attaches "
            "Databricks), and the run names none",
            hint=NO_CLUSTER_HINT,
        )

    def _check_request(self, request: SubmitRequest) -> None:
        self._cluster_for(request)
        env = request.environment
        if env.docker is not None:
            raise UsageError(
                f"target {self.name!r} (Databricks) cannot run a Docker environment",
                hint="set environment.docker.enabled: false",
            )
        conda = [p for p in env.conda_packages if p.split("=")[0].strip() not in {"python", "pip"}]
        if env.managed and conda:
            raise UsageError(
                f"Databricks runs take pip and Maven libraries only, not conda packages: "
                f"{', '.join(conda)}",
                hint="move them to the pip section of the conda file",
            )
        for entry in request.snapshot.files:
            if entry.link is None and entry.size > MAX_IMPORT_BYTES:
                raise UsageError(
                    f"{entry.path} ({entry.size} bytes) is larger than the workspace import "
                    f"API takes ({MAX_IMPORT_BYTES} bytes)",
                    hint="keep large data out of the source directory (.amlignore) and read it "
                    "from cloud storage or a volume",
                )

    def _libraries(self, request: SubmitRequest) -> list[Any]:
        from databricks.sdk.service import compute

        libraries: list[Any] = []
        if request.environment.managed:
            for package in request.environment.pip_packages:
                libraries.append(compute.Library(pypi=compute.PythonPyPiLibrary(package=package)))
        spark = request.config.environment.spark
        repo = spark.repositories[0] if spark.repositories else None
        for maven in spark.packages:
            libraries.append(
                compute.Library(maven=compute.MavenLibrary(coordinates=maven.coordinate, repo=repo))
            )
        section = request.config.environment.databricks
        if section is not None:
            for item in section.pypi_libraries:
                libraries.append(compute.Library(pypi=compute.PythonPyPiLibrary.from_dict(item)))
            for item in section.maven_libraries:
                libraries.append(compute.Library(maven=compute.MavenLibrary.from_dict(item)))
        return libraries

    def _present(self, folder: str) -> set[str]:
        from databricks.sdk import errors

        w = self.client()
        try:
            return {posixpath.basename(str(o.path)) for o in self._list(folder)}
        except errors.NotFound:
            self._retry(lambda: w.workspace.mkdirs(folder))
            return set()

    def _list(self, folder: str) -> list[Any]:
        return self._retry(lambda: list(self.client().workspace.list(folder)))

    def _import(self, path: str, data: bytes) -> None:
        from databricks.sdk.service.workspace import ImportFormat

        content = base64.b64encode(data).decode("ascii")
        self._retry(
            lambda: self.client().workspace.import_(
                path, content=content, format=ImportFormat.AUTO, overwrite=True
            )
        )

    def submit(self, request: SubmitRequest, progress: Progress = no_progress) -> RunHandle:
        """Upload what is missing, then submit a one-time run. Returns once Databricks
        has accepted the run; does not wait for it."""
        self._check_request(request)
        w = self.client()
        from databricks.sdk.service import compute, jobs

        root = self._root()
        objects = f"{root}/objects"
        folder = f"{root}/runs/{request.run_id}"
        rows = manifest_rows(request.snapshot.to_manifest()["files"])
        library = (
            [] if keeps_real_sdk(request.config, request.environment) else list(run_library_files())
        )
        with self._translated("uploading the snapshot"):
            present = self._present(objects)
            todo: dict[str, Path] = {}
            for row in rows:
                if row.link is None and row.digest not in present:
                    todo.setdefault(row.digest, request.snapshot.source(row.path))
            for row, path in library:
                if row.digest not in present:
                    todo.setdefault(row.digest, path)
            for count, (digest, source) in enumerate(sorted(todo.items()), 1):
                self._import(f"{objects}/{digest}", source.read_bytes())
                progress("upload-files", count, len(todo))
            self._retry(lambda: w.workspace.mkdirs(folder))
            config = request.config
            spec: WrapperSpec = {
                "run_id": request.run_id,
                "objects": objects,
                "files": rows,
                "entry": request.entry(),
                # conda `variables:` first, so the runconfig's own variables win
                "environment_variables": {
                    **dict(request.environment.variables),
                    **request.environment_variables(),
                },
                "part_bytes": PART_BYTES,
                "experiment": request.experiment,
                "run_library": [row for row, _path in library],
            }
            self._import(f"{folder}/spec.json", json.dumps(spec).encode())
            self._import(f"{folder}/{WRAPPER_NAME}", _WRAPPER.encode())
        task = jobs.SubmitTask(
            task_key="targets",
            spark_python_task=jobs.SparkPythonTask(
                python_file=f"{folder}/{WRAPPER_NAME}",
                parameters=[WORKSPACE_MOUNT, folder],
                source=jobs.Source.WORKSPACE,
            ),
            libraries=self._libraries(request) or None,
        )
        existing, new_cluster = self._cluster_for(request)
        if existing is not None:
            task.existing_cluster_id = existing
        else:
            task.new_cluster = compute.ClusterSpec.from_dict(dict(new_cluster or {}))
        limit = config.max_run_duration_seconds
        with self._translated("submitting the run"):
            waiter = self._retry(
                lambda: w.jobs.submit(
                    run_name=f"targets {request.run_id}",
                    tasks=[task],
                    timeout_seconds=int(limit) if limit else None,
                    idempotency_token=request.run_id[:64],
                )
            )
        return RunHandle(
            kind=self.kind,
            target=self.name,
            run_id=request.run_id,
            data=DatabricksHandleData(
                databricks_run_id=int(waiter.run_id),
                folder=folder,
                max_run_duration_seconds=limit,
                uploaded=len(todo),
            ),
        )

    # -- status, logs, outputs -----------------------------------------------------------

    def _run(self, handle: RunHandle) -> Any:
        with self._translated(f"reading run {handle.run_id}"):
            run_id = _handle_data(handle)["databricks_run_id"]
            return self._retry(lambda: self.client().jobs.get_run(run_id))

    def _exit_info(self, handle: RunHandle) -> ExitInfo:
        """``exit.json`` the wrapper wrote (empty when it never got that far)."""
        from databricks.sdk import errors

        try:
            with self._translated(f"reading the exit code of run {handle.run_id}"):
                raw = self._export(f"{_handle_data(handle)['folder']}/exit.json")
        except DatabricksAPIError as exc:
            if isinstance(exc.__cause__, errors.NotFound):
                return {}
            raise
        try:
            info = json.loads(raw)
        except ValueError:
            return {}
        if not isinstance(info, dict):
            return {}
        code, error = info.get("exit_code"), info.get("error")
        checked: ExitInfo = {"error": error if isinstance(error, str) else None}
        if type(code) is int:
            checked["exit_code"] = code
        return checked

    def _export(self, path: str) -> bytes:
        from databricks.sdk.service.workspace import ExportFormat

        got = self._retry(lambda: self.client().workspace.export(path, format=ExportFormat.AUTO))
        return base64.b64decode(got.content or "")

    def status(self, handle: RunHandle) -> RunState:
        """Map Databricks' ``life_cycle_state``/``result_state`` to a :class:`RunState`."""
        done = self._finished.get(handle.run_id)
        if done is not None:
            return done["state"]  # type: ignore[no-any-return]
        run = self._run(handle)
        state = run.state
        life = state.life_cycle_state.value if state and state.life_cycle_state else "PENDING"
        result = state.result_state.value if state and state.result_state else None
        message = state.state_message if state else None
        started = run.start_time / 1000 if run.start_time else None
        if life in {"PENDING", "QUEUED", "BLOCKED", "WAITING_FOR_RETRY"}:
            return RunState(RunStatus.QUEUED, message=message or None, started_at=started)
        if life in {"RUNNING", "TERMINATING"}:
            return RunState(RunStatus.RUNNING, started_at=started)
        info = self._exit_info(handle)
        code = info.get("exit_code")
        exit_code = int(code) if isinstance(code, int) else None
        ended = run.end_time / 1000 if run.end_time else None
        if result == "SUCCESS" and life == "TERMINATED":
            status, text = RunStatus.COMPLETED, None
            exit_code = 0 if exit_code is None else exit_code
        elif result == "CANCELED":
            status, text = RunStatus.CANCELED, message or "canceled"
        elif result == "TIMEDOUT":
            limit = _handle_data(handle).get("max_run_duration_seconds")
            status = RunStatus.FAILED
            text = f"exceeded max_run_duration_seconds ({limit}s): {message or 'timed out'}"
        else:
            status = RunStatus.FAILED
            text = info.get("error") or message or f"{life} {result or ''}".strip()
        final = RunState(status, exit_code, text, started_at=started, ended_at=ended)
        self._finished[handle.run_id] = {"state": final, "run": run}
        return final

    def _status_lines(self, run: Any) -> tuple[str, str]:
        """Status transitions as lines that only grow: each depends on how far the run got,
        never on when it was polled. Returns (lines before the driver output, the last)."""
        state = run.state
        life = state.life_cycle_state.value if state and state.life_cycle_state else "PENDING"
        lines = [f"[databricks] run {run.run_id} submitted, waiting for the cluster"]
        ran = life in {"RUNNING", "TERMINATING"} or (
            life in _TERMINAL_LIFE_CYCLES and (run.execution_duration or 0) > 0
        )
        if ran:
            lines.append("[databricks] running")
        last = ""
        if life in _TERMINAL_LIFE_CYCLES:
            result = state.result_state.value if state and state.result_state else "-"
            message = (state.state_message or "").strip()
            last = f"[databricks] {life} {result}" + (f": {message}" if message else "") + "\n"
        return "".join(line + "\n" for line in lines), last

    def _driver_output(self, handle: RunHandle, run: Any) -> bytes:
        done = self._finished.get(handle.run_id)
        if done is not None and "driver" in done:
            return done["driver"]  # type: ignore[no-any-return]
        tasks = run.tasks or []
        if not tasks:
            return b""
        with self._translated(f"reading the output of run {handle.run_id}"):
            task_run = int(tasks[0].run_id)
            output = self._retry(lambda: self.client().jobs.get_run_output(task_run))
        text = output.logs or ""
        if output.logs_truncated:
            # The cut is at the end of what came; say so there, before the error trace.
            text += ("\n" if text and not text.endswith("\n") else "") + TRUNCATED_NOTE
        if output.error_trace and output.error_trace not in text:
            text += ("\n" if text and not text.endswith("\n") else "") + output.error_trace
        data = text.encode()
        if done is not None:
            done["driver"] = data
        return data

    def read_logs(self, handle: RunHandle, offsets: Mapping[str, int]) -> list[LogChunk]:
        """``driver.log``: status transitions while the run goes, then, once it has ended,
        the driver's standard output (``runs/get-output``) and the final state."""
        done = self._finished.get(handle.run_id)
        run = done["run"] if done is not None else self._run(handle)
        head, last = self._status_lines(run)
        data = head.encode()
        if last:
            self.status(handle)  # remembers the terminal run
            output = self._driver_output(handle, run)
            if output and not output.endswith(b"\n"):
                output += b"\n"
            data += output + last.encode()
        start = offsets.get("driver.log", 0)
        if len(data) > start:
            return [LogChunk("driver.log", start, data[start:])]
        return []

    def fetch_outputs(self, handle: RunHandle, dest: Path) -> None:
        """Download the run folder's ``outputs/``, ``logs/`` and ``mlruns/`` (the run's
        MLflow store, where the run library logs; files whose size differs from the local
        copy). A file the wrapper stored as parts (larger than :data:`PART_BYTES`) is put
        together from them and checked against its size and SHA-256 before it replaces
        the local copy. Idempotent."""
        from databricks.sdk import errors

        folder = _handle_data(handle)["folder"]
        with self._translated(f"downloading the outputs of run {handle.run_id}"):
            for top in COLLECTED:
                pending = [f"{folder}/{top}"]
                while pending:
                    current = pending.pop()
                    try:
                        items = self._list(current)
                    except errors.NotFound:
                        continue
                    for item in items:
                        path = str(item.path)
                        kind = item.object_type.value if item.object_type else ""
                        rel = posixpath.relpath(path, folder).split("/")
                        if ".." in rel:
                            continue
                        if kind == "DIRECTORY":
                            # kept even when empty (an MLflow run's params/, ...)
                            dest.joinpath(*rel).mkdir(parents=True, exist_ok=True)
                            pending.append(path)
                            continue
                        local = dest.joinpath(*rel)
                        same_size = local.is_file() and local.stat().st_size == item.size
                        if same_size and item.size is not None:
                            continue
                        _replace(local, [functools.partial(self._export, path)])
            self._fetch_parts(handle, folder, dest)

    def _fetch_parts(self, handle: RunHandle, folder: str, dest: Path) -> None:
        from databricks.sdk import errors

        try:
            listed = json.loads(self._export(f"{folder}/parts.json"))
        except errors.NotFound:
            return
        except ValueError:
            listed = None
        if not isinstance(listed, dict):
            raise DatabricksAPIError(f"the parts list of run {handle.run_id} is not valid JSON")
        for rel, info in sorted(listed.items()):
            names = rel.split("/") if isinstance(rel, str) else []
            valid = (
                len(names) >= 2
                and names[0] in COLLECTED
                and all(n not in {"", ".", ".."} and "\0" not in n for n in names)
                and isinstance(info, dict)
                and all(isinstance(info.get(k), int) and info[k] >= 0 for k in ("size", "parts"))
                and isinstance(info.get("sha256"), str)
            )
            if not valid:
                raise DatabricksAPIError(
                    f"run {handle.run_id} lists a large output file that cannot be right: {rel!r}"
                )
            local = dest.joinpath(*names)
            if local.is_file() and local.stat().st_size == info["size"]:
                continue
            base = f"{folder}/parts/{rel}"
            reads = [
                functools.partial(self._export, f"{base}/{index:06d}")
                for index in range(info["parts"])
            ]

            def check(size: int, sha256: str, rel: str = rel, info: dict[str, Any] = info) -> None:
                if (size, sha256) != (info["size"], info["sha256"]):
                    raise DatabricksAPIError(
                        f"{rel} of run {handle.run_id} came back with {size} bytes (sha256 "
                        f"{sha256[:12]}), not the {info['size']} bytes (sha256 "
                        f"{info['sha256'][:12]}) the run wrote; download it again"
                    )

            _replace(local, reads, check)

    def cancel(self, handle: RunHandle) -> None:
        """Ask Databricks to cancel the run; returns without waiting. Idempotent."""
        with self._translated(f"canceling run {handle.run_id}"):
            run_id = _handle_data(handle)["databricks_run_id"]
            self._retry(lambda: self.client().jobs.cancel_run(run_id))
