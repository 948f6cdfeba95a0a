"""A local emulator of the Databricks REST endpoints the ``databricks`` kind uses.

The Databricks workspace cannot be reached from the test machine, so the tests run the
real ``databricks-sdk`` against this stdlib HTTP server on 127.0.0.1. It follows the
documented REST API:

- Workspace 2.0: ``workspace/import`` (JSON, base64), ``get-status``, ``list``,
  ``mkdirs``, ``export``;
- Jobs 2.1 and 2.2 (the SDK calls 2.2): ``jobs/runs/submit``, ``runs/get``,
  ``runs/get-output``, ``runs/cancel``;
- Clusters 2.0 and 2.1: ``clusters/get``; SCIM: ``preview/scim/v2/Me``.

It checks the bearer token (401 otherwise), rejects unknown or missing fields with
``INVALID_PARAMETER_VALUE`` like the service, and plays the run state machine
PENDING -> RUNNING -> TERMINATING -> TERMINATED (result SUCCESS, FAILED, TIMEDOUT or
CANCELED). A ``spark_python_task`` really runs: the workspace files live in a local folder,
which the emulator also offers to the task as the driver's ``/Workspace`` mount (it
rewrites parameters that start with ``/Workspace``), and the task's output is what
``runs/get-output`` returns. Libraries are validated and recorded, not installed: the task
runs with this interpreter.

It enforces the documented limits the real service has, so that a client that ignores them
fails here as it would there:

- ``workspace/export`` and ``workspace/import`` take or return at most 10 MB of base64
  (``MAX_NOTEBOOK_SIZE_EXCEEDED``);
- ``runs/get-output`` returns the first 5 MB of the driver output only, with
  ``logs_truncated: true``;
- :meth:`DatabricksEmulator.answer_later` makes the next requests fail the way a busy
  workspace does: 429 ``REQUEST_LIMIT_EXCEEDED``, 503 ``TEMPORARILY_UNAVAILABLE``, 500 or
  504, each with a ``Retry-After`` header.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["DatabricksEmulator"]

_SUBMIT_FIELDS = {
    "run_name",
    "tasks",
    "timeout_seconds",
    "idempotency_token",
    "access_control_list",
    "email_notifications",
    "git_source",
    "health",
    "notification_settings",
    "queue",
    "run_as",
    "webhook_notifications",
    "environments",
    "budget_policy_id",
}
_TASK_FIELDS = {
    "task_key",
    "existing_cluster_id",
    "new_cluster",
    "spark_python_task",
    "libraries",
    "timeout_seconds",
    "depends_on",
    "run_if",
    "email_notifications",
    "notification_settings",
    "webhook_notifications",
    "health",
    "environment_key",
}
_CLUSTER_FIELDS = {
    "spark_version",
    "node_type_id",
    "num_workers",
    "autoscale",
    "driver_node_type_id",
    "instance_pool_id",
    "policy_id",
    "runtime_engine",
    "data_security_mode",
    "single_user_name",
    "spark_conf",
    "spark_env_vars",
    "custom_tags",
}
_LIBRARY_KINDS = {
    "pypi": ({"package"}, {"repo"}),
    "maven": ({"coordinates"}, {"repo", "exclusions"}),
    "jar": None,
    "whl": None,
    "egg": None,
    "requirements": None,
}
_IMPORT_FORMATS = {"AUTO", "SOURCE", "HTML", "JUPYTER", "DBC", "R_MARKDOWN", "RAW"}
_EXPORT_FORMATS = {"AUTO", "SOURCE", "HTML", "JUPYTER", "DBC", "R_MARKDOWN", "RAW"}
#: Workspace import and export: 10 MB of base64 content per request.
MAX_WORKSPACE_CONTENT = 10 * 1024 * 1024
#: ``runs/get-output`` returns the first 5 MB of the output.
MAX_OUTPUT_LOGS = 5 * 1024 * 1024
_LATER = {
    429: ("REQUEST_LIMIT_EXCEEDED", "Too many requests. Please try again later."),
    500: ("INTERNAL_ERROR", "Internal error. Please try again later."),
    503: ("TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again later."),
}


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def _bad(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def _fields(body: Any, allowed: set[str], required: set[str], where: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _bad(f"{where} must be an object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _bad(f"Unknown field(s) in {where}: {', '.join(unknown)}")
    missing = sorted(required - set(body))
    if missing:
        raise _bad(f"Missing required field(s) in {where}: {', '.join(missing)}")
    return body


@dataclass
class EmulatedRun:
    run_id: int
    task_run_id: int
    body: dict[str, Any]
    start_time: int
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = "Waiting for cluster"
    end_time: int = 0
    execution_started: float | None = None
    execution_duration: int = 0
    logs: bytearray = field(default_factory=bytearray)
    cancel_requested: bool = False
    process: subprocess.Popen[bytes] | None = None

    def state(self) -> dict[str, Any]:
        state = {"life_cycle_state": self.life_cycle_state, "state_message": self.state_message}
        if self.result_state:
            state["result_state"] = self.result_state
        return state


class DatabricksEmulator:
    """``with DatabricksEmulator(token="t") as dbx: WorkspaceClient(host=dbx.host, token="t")``.

    ``calls`` records ``(method, path, body)`` of every authenticated request.
    """

    def __init__(
        self,
        token: str,
        *,
        user: str = "someone@example.com",
        clusters: dict[str, dict[str, Any]] | None = None,
        pending_seconds: float = 0.2,
    ) -> None:
        self.token = token
        self.user = user
        self.clusters = clusters or {
            "0123-456789-abcde": {
                "cluster_name": "shared",
                "spark_version": "15.4.x-scala2.12",
                "state": "RUNNING",
            }
        }
        self.pending_seconds = pending_seconds
        self._tmp = tempfile.TemporaryDirectory(prefix="dbx-emulator-")
        self.root = Path(self._tmp.name) / "workspace"
        (self.root / "Users" / user).mkdir(parents=True)
        self.calls: list[tuple[str, str, Any]] = []
        self.runs: dict[int, EmulatedRun] = {}
        self._by_task: dict[int, EmulatedRun] = {}
        self._tokens: dict[str, int] = {}
        self._lock = threading.Lock()
        self._next_id = 1000
        self._server: ThreadingHTTPServer | None = None
        self._later: list[tuple[int, int, str]] = []
        #: ``(status, method, path)`` of every request answered "later".
        self.answered_later: list[tuple[int, str, str]] = []

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def host(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> DatabricksEmulator:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                emulator._handle(self, "GET")

            def do_POST(self) -> None:
                emulator._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        for run in list(self.runs.values()):
            if run.process is not None and run.process.poll() is None:
                run.process.kill()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._tmp.cleanup()

    def __enter__(self) -> DatabricksEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer_later(self, statuses: list[int], *, retry_after: int = 0, only: str = "") -> None:
        """Answer the next ``len(statuses)`` authenticated requests whose path contains
        ``only`` with these statuses (429, 500, 503 or 504) and ``Retry-After:
        retry_after``, in order, before serving requests normally again."""
        with self._lock:
            for status in statuses:
                if status not in _LATER:
                    raise ValueError(f"answer_later takes {sorted(_LATER)}, not {status}")
                self._later.append((status, retry_after, only))

    def _take_later(self, method: str, path: str) -> ApiError | None:
        with self._lock:
            if not self._later or self._later[0][2] not in path:
                return None
            status, retry_after, _only = self._later.pop(0)
            self.answered_later.append((status, method, path))
        code, message = _LATER[status]
        return ApiError(status, code, message, {"Retry-After": str(retry_after)})

    def imports(self, under: str = "") -> list[str]:
        """Paths imported so far (optionally only those containing ``under``)."""
        return [
            b["path"]
            for m, p, b in self.calls
            if p.endswith("/workspace/import") and under in b["path"]
        ]

    # -- HTTP ----------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(request.path)
        try:
            if (method, url.path) == ("GET", "/.well-known/databricks-config"):
                # The SDK's unauthenticated discovery probe (host metadata).
                status, payload = 200, {"oidc_endpoint": f"{self.host}/oidc", "workspace_id": "1"}
                self._reply(request, status, payload)
                return
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                raise ApiError(401, "UNAUTHENTICATED", "Invalid access token.")
            later = self._take_later(method, url.path)
            if later is not None:
                if method == "POST":  # a busy service reads nothing of the request
                    request.rfile.read(int(request.headers.get("Content-Length") or 0))
                raise later
            if method == "POST":
                length = int(request.headers.get("Content-Length") or 0)
                raw = request.rfile.read(length) if length else b"{}"
                try:
                    body: Any = json.loads(raw or b"{}")
                except ValueError:
                    raise ApiError(400, "MALFORMED_REQUEST", "Invalid JSON in request") from None
            else:
                body = {k: v[-1] for k, v in parse_qs(url.query).items()}
            self.calls.append((method, url.path, body))
            route = self._routes().get((method, url.path))
            if route is None:
                raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {url.path}'")
            status, payload, headers = 200, route(body), {}
        except ApiError as exc:
            status, payload = exc.status, {"error_code": exc.code, "message": exc.message}
            headers = exc.headers
        self._reply(request, status, payload, headers)

    @staticmethod
    def _reply(
        request: BaseHTTPRequestHandler,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        request.send_response(status)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _routes(self) -> dict[tuple[str, str], Any]:
        routes: dict[tuple[str, str], Any] = {
            ("GET", "/api/2.0/preview/scim/v2/Me"): self._me,
            ("POST", "/api/2.0/workspace/import"): self._import,
            ("GET", "/api/2.0/workspace/get-status"): self._get_status,
            ("GET", "/api/2.0/workspace/list"): self._list,
            ("POST", "/api/2.0/workspace/mkdirs"): self._mkdirs,
            ("GET", "/api/2.0/workspace/export"): self._export,
        }
        for version in ("2.0", "2.1"):
            routes[("GET", f"/api/{version}/clusters/get")] = self._cluster
        for version in ("2.1", "2.2"):
            routes[("POST", f"/api/{version}/jobs/runs/submit")] = self._submit
            routes[("GET", f"/api/{version}/jobs/runs/get")] = self._get_run
            routes[("GET", f"/api/{version}/jobs/runs/get-output")] = self._get_output
            routes[("POST", f"/api/{version}/jobs/runs/cancel")] = self._cancel
        return routes

    # -- identity and clusters -------------------------------------------------------------

    def _me(self, query: dict[str, Any]) -> dict[str, Any]:
        return {"id": "4242", "userName": self.user, "active": True}

    def _cluster(self, query: dict[str, Any]) -> dict[str, Any]:
        cluster_id = _fields(query, {"cluster_id"}, {"cluster_id"}, "request")["cluster_id"]
        if cluster_id not in self.clusters:
            raise _bad(f"Cluster {cluster_id} does not exist")
        return {"cluster_id": cluster_id, **self.clusters[cluster_id]}

    # -- workspace -----------------------------------------------------------------------

    def local(self, path: Any) -> Path:
        """The local file behind the workspace path ``path``."""
        if not isinstance(path, str) or not path.startswith("/"):
            raise _bad(f"Path ({path}) doesn't start with '/'")
        parts = [p for p in path.split("/") if p]
        if ".." in parts or "." in parts:
            raise _bad(f"Invalid path: {path}")
        return self.root.joinpath(*parts)

    def _info(self, path: str, local: Path) -> dict[str, Any]:
        st = local.stat()
        info: dict[str, Any] = {
            "path": path,
            "object_id": st.st_ino,
            "object_type": "DIRECTORY" if local.is_dir() else "FILE",
            "modified_at": int(st.st_mtime * 1000),
        }
        if local.is_file():
            info["size"] = st.st_size
        return info

    def _missing(self, path: str) -> ApiError:
        return ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Path ({path}) doesn't exist.")

    def _import(self, body: dict[str, Any]) -> dict[str, Any]:
        _fields(body, {"path", "content", "format", "language", "overwrite"}, {"path"}, "request")
        path, fmt = body["path"], body.get("format", "SOURCE")
        if fmt not in _IMPORT_FORMATS:
            raise _bad(f"Invalid format: {fmt}")
        if fmt == "SOURCE" and "language" not in body:
            raise _bad("The language field is required when importing a single file as SOURCE")
        local = self.local(path)
        if not local.parent.is_dir():
            raise ApiError(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"The parent folder ({Path(path).parent}) does not exist.",
            )
        if local.exists() and not body.get("overwrite"):
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Path ({path}) already exists.")
        try:
            data = base64.b64decode(body.get("content", ""), validate=True)
        except ValueError:
            raise ApiError(400, "MALFORMED_REQUEST", "content is not valid base64") from None
        if len(body.get("content", "")) > MAX_WORKSPACE_CONTENT:
            raise ApiError(
                400,
                "MAX_NOTEBOOK_SIZE_EXCEEDED",
                f"File size imported is {len(data)} bytes), exceeded max size "
                f"({MAX_WORKSPACE_CONTENT} bytes)",
            )
        local.write_bytes(data)
        return {}

    def _get_status(self, query: dict[str, Any]) -> dict[str, Any]:
        path = _fields(query, {"path"}, {"path"}, "request")["path"]
        local = self.local(path)
        if not local.exists():
            raise self._missing(path)
        return self._info(path, local)

    def _list(self, query: dict[str, Any]) -> dict[str, Any]:
        path = _fields(query, {"path", "notebooks_modified_after"}, {"path"}, "request")["path"]
        local = self.local(path)
        if not local.exists():
            raise self._missing(path)
        if local.is_file():
            return {"objects": [self._info(path, local)]}
        objects = [self._info(path.rstrip("/") + "/" + c.name, c) for c in sorted(local.iterdir())]
        return {"objects": objects} if objects else {}

    def _mkdirs(self, body: dict[str, Any]) -> dict[str, Any]:
        path = _fields(body, {"path"}, {"path"}, "request")["path"]
        local = self.local(path)
        for parent in [local, *local.parents]:
            if parent.is_file():
                raise ApiError(
                    400,
                    "RESOURCE_ALREADY_EXISTS",
                    f"A file exists at {parent.relative_to(self.root)}",
                )
            if parent == self.root:
                break
        local.mkdir(parents=True, exist_ok=True)
        return {}

    def _export(self, query: dict[str, Any]) -> dict[str, Any]:
        _fields(query, {"path", "format", "direct_download"}, {"path"}, "request")
        path, fmt = query["path"], query.get("format", "SOURCE")
        if fmt not in _EXPORT_FORMATS:
            raise _bad(f"Invalid format: {fmt}")
        local = self.local(path)
        if not local.exists():
            raise self._missing(path)
        if local.is_dir():
            raise _bad("Exporting a directory needs the DBC, SOURCE or AUTO format as an archive")
        content = base64.b64encode(local.read_bytes()).decode()
        if len(content) > MAX_WORKSPACE_CONTENT:
            raise ApiError(
                400,
                "MAX_NOTEBOOK_SIZE_EXCEEDED",
                f"File size exported is {local.stat().st_size} bytes, exceeded max size "
                f"({MAX_WORKSPACE_CONTENT} bytes)",
            )
        return {"content": content, "file_type": "py"}

    # -- jobs ----------------------------------------------------------------------------

    def _check_task(self, task: Any) -> None:
        _fields(task, _TASK_FIELDS, {"task_key"}, "task")
        clusters = [k for k in ("existing_cluster_id", "new_cluster") if k in task]
        if len(clusters) != 1:
            raise _bad("A task needs exactly one of existing_cluster_id or new_cluster")
        if "existing_cluster_id" in task and task["existing_cluster_id"] not in self.clusters:
            raise _bad(f"Cluster {task['existing_cluster_id']} does not exist")
        if "new_cluster" in task:
            spec = _fields(task["new_cluster"], _CLUSTER_FIELDS, {"spark_version"}, "new_cluster")
            if "num_workers" not in spec and "autoscale" not in spec:
                raise _bad("new_cluster needs num_workers or autoscale")
            if "node_type_id" not in spec and "instance_pool_id" not in spec:
                raise _bad("new_cluster needs node_type_id or instance_pool_id")
        if "spark_python_task" not in task:
            raise _bad("This emulator runs spark_python_task tasks only")
        python = _fields(
            task["spark_python_task"],
            {"python_file", "parameters", "source"},
            {"python_file"},
            "spark_python_task",
        )
        if python.get("source", "WORKSPACE") not in {"WORKSPACE", "GIT"}:
            raise _bad(f"Invalid source: {python['source']}")
        params = python.get("parameters", [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise _bad("parameters must be a list of strings")
        for library in task.get("libraries", []):
            if not isinstance(library, dict) or len(library) != 1:
                raise _bad("A library names exactly one of: " + ", ".join(_LIBRARY_KINDS))
            ((kind, value),) = library.items()
            if kind not in _LIBRARY_KINDS:
                raise _bad(f"Unknown library type: {kind}")
            shape = _LIBRARY_KINDS[kind]
            if shape is not None:
                _fields(value, shape[0] | shape[1], shape[0], f"{kind} library")

    def _submit(self, body: dict[str, Any]) -> dict[str, Any]:
        _fields(body, _SUBMIT_FIELDS, {"tasks"}, "request")
        tasks = body["tasks"]
        if not isinstance(tasks, list) or not tasks:
            raise _bad("tasks must be a non-empty list")
        for task in tasks:
            self._check_task(task)
        if len(tasks) != 1:
            raise _bad("This emulator runs single-task submissions only")
        timeout = body.get("timeout_seconds")
        if timeout is not None and (not isinstance(timeout, int) or timeout < 0):
            raise _bad("timeout_seconds must be a non-negative integer")
        with self._lock:
            token = body.get("idempotency_token")
            if token is not None and token in self._tokens:
                return {"run_id": self._tokens[token]}
            run = EmulatedRun(
                run_id=self._next_id,
                task_run_id=self._next_id + 1,
                body=body,
                start_time=int(time.time() * 1000),
            )
            self._next_id += 2
            self.runs[run.run_id] = run
            self._by_task[run.task_run_id] = run
            if token is not None:
                self._tokens[token] = run.run_id
        threading.Thread(target=self._play, args=(run,), daemon=True).start()
        return {"run_id": run.run_id}

    def _finish(self, run: EmulatedRun, result: str, message: str) -> None:
        with self._lock:
            run.life_cycle_state = "TERMINATING"
        if run.execution_started is not None:
            run.execution_duration = max(1, int((time.time() - run.execution_started) * 1000))
        with self._lock:
            run.result_state, run.state_message = result, message
            run.end_time = int(time.time() * 1000)
            run.life_cycle_state = "TERMINATED"

    def _rewrite(self, value: str) -> str:
        """The driver's ``/Workspace`` mount of workspace files is this emulator's folder."""
        if value == "/Workspace" or value.startswith("/Workspace/"):
            return str(self.root) + value[len("/Workspace") :]
        return value

    def _play(self, run: EmulatedRun) -> None:
        time.sleep(self.pending_seconds)
        task = run.body["tasks"][0]
        python = task["spark_python_task"]
        with self._lock:
            if run.cancel_requested:
                run.life_cycle_state, run.result_state = "TERMINATED", "CANCELED"
                run.state_message = "Run cancelled."
                run.end_time = int(time.time() * 1000)
                return
            script = self.local(python["python_file"])
            if not script.is_file():
                run.life_cycle_state, run.result_state = "INTERNAL_ERROR", "FAILED"
                run.state_message = f"File {python['python_file']} not found"
                run.end_time = int(time.time() * 1000)
                return
            workdir = tempfile.mkdtemp(prefix="driver-", dir=self._tmp.name)
            args = [self._rewrite(p) for p in python.get("parameters", [])]
            log_path = Path(workdir) / "driver-output"
            with open(log_path, "wb") as out:
                run.process = subprocess.Popen(
                    [sys.executable, str(script), *args],
                    cwd=workdir,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            run.execution_started = time.time()
            run.life_cycle_state, run.state_message = "RUNNING", "In run"
        timeout = run.body.get("timeout_seconds") or None
        try:
            code = run.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._stop(run.process)
            self._collect(run, log_path)
            self._finish(run, "TIMEDOUT", f"Run timed out after {timeout} seconds.")
            return
        self._collect(run, log_path)
        if run.cancel_requested:
            self._finish(run, "CANCELED", "Run cancelled.")
        elif code == 0:
            self._finish(run, "SUCCESS", "")
        else:
            self._finish(
                run,
                "FAILED",
                f"Task {task['task_key']} failed with message: Workload failed, see run output "
                "for details.",
            )

    def _collect(self, run: EmulatedRun, log_path: Path) -> None:
        run.logs[:] = log_path.read_bytes()

    @staticmethod
    def _stop(process: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass

    def _run_of(self, query: dict[str, Any]) -> EmulatedRun:
        try:
            run_id = int(query["run_id"])
        except (KeyError, TypeError, ValueError):
            raise _bad("run_id is required and must be an integer") from None
        run = self.runs.get(run_id) or self._by_task.get(run_id)
        if run is None:
            raise _bad(f"Run {run_id} does not exist.")
        return run

    def _get_run(self, query: dict[str, Any]) -> dict[str, Any]:
        _fields(
            query,
            {"run_id", "include_history", "include_resolved_values", "page_token"},
            {"run_id"},
            "request",
        )
        run = self._run_of(query)
        with self._lock:
            task = run.body["tasks"][0]
            common = {
                "start_time": run.start_time,
                "end_time": run.end_time,
                "execution_duration": run.execution_duration,
                "state": run.state(),
            }
            return {
                "run_id": run.run_id,
                "run_name": run.body.get("run_name", "Untitled"),
                "run_type": "SUBMIT_RUN",
                **common,
                "tasks": [{"run_id": run.task_run_id, "task_key": task["task_key"], **common}],
            }

    def _get_output(self, query: dict[str, Any]) -> dict[str, Any]:
        _fields(query, {"run_id"}, {"run_id"}, "request")
        run = self._run_of(query)
        if int(query["run_id"]) == run.run_id:
            raise _bad(
                "Retrieving the output of runs with multiple tasks is not supported. Please "
                "retrieve the output of each individual task run instead."
            )
        with self._lock:
            output: dict[str, Any] = {
                "metadata": {"run_id": run.task_run_id, "state": run.state()},
                "logs": run.logs[:MAX_OUTPUT_LOGS].decode(errors="replace"),
                "logs_truncated": len(run.logs) > MAX_OUTPUT_LOGS,
            }
            if run.result_state == "FAILED":
                output["error"] = "Workload failed"
            return output

    def _cancel(self, body: dict[str, Any]) -> dict[str, Any]:
        _fields(body, {"run_id"}, {"run_id"}, "request")
        run = self._run_of(body)
        with self._lock:
            if run.life_cycle_state in {"TERMINATED", "INTERNAL_ERROR", "SKIPPED"}:
                return {}
            run.cancel_requested = True
            process = run.process
        if process is not None and process.poll() is None:
            threading.Thread(target=self._stop, args=(process,), daemon=True).start()
        return {}
