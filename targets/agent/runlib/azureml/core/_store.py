"""Writes an MLflow *file store* run directly, with no ``mlflow`` package.

The layout is MLflow's own (``<store>/<experiment id>/meta.yaml``,
``<store>/<experiment id>/<run id>/{meta.yaml,metrics/,params/,tags/,artifacts/}``, a metric
file holding ``"<timestamp ms> <value> <step>"`` lines), so ``mlflow ui``, MLflow itself and
``targets`` (targets/tracking.py) read it. Every call is also appended, as one JSON object a
line, to ``artifacts/azureml/metrics.jsonl`` (``{"kind", "name", "value", "description",
"time"}``): what v1's ``get_metrics()`` returns, including values MLflow cannot hold
(strings, tables, images).
"""

import hashlib
import json
import os
import time
import uuid
from typing import Any, Dict, List, Optional

RUNNING, FINISHED, FAILED, KILLED = 1, 3, 4, 5
RECORD = ("azureml", "metrics.jsonl")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _write_atomic(path: str, text: str) -> None:
    tmp = "%s.%s.tmp" % (path, uuid.uuid4().hex[:8])
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _meta_value(path: str, key: str) -> Optional[str]:
    """A top-level ``key: value`` of a meta.yaml MLflow wrote (plain or quoted scalar)."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, ValueError):
        return None
    for line in lines:
        if line.startswith(key + ":"):
            value = line[len(key) + 1 :].strip()
            if len(value) >= 2 and value[0] == value[-1] == "'":
                return value[1:-1].replace("''", "'")
            if len(value) >= 2 and value[0] == value[-1] == '"':
                return str(json.loads(value))
            return value
    return None


def safe_name(name: str, what: str) -> str:
    """A metric, tag or file name usable as a relative path in the store."""
    name = str(name)
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            "%s name %r cannot be stored: use a non-empty relative name without "
            "'.', '..' or empty parts" % (what, name)
        )
    return name


class Store:
    """One MLflow run in a file store."""

    def __init__(
        self,
        root: str,
        experiment: str,
        run_name: str,
        run_key: str,
        tags: Optional[Dict[str, str]] = None,
    ) -> None:
        self.root = root
        self.experiment_id = self._experiment(experiment)
        self.run_id = uuid.uuid5(uuid.NAMESPACE_URL, "targets-run:" + run_key).hex
        self.dir = os.path.join(root, self.experiment_id, self.run_id)
        if not os.path.exists(os.path.join(self.dir, "meta.yaml")):
            self._create_run(run_name, tags or {})

    @classmethod
    def attach(cls, root: str, experiment_id: str, run_id: str) -> "Store":
        """The MLflow run ``run_id`` that MLflow itself started in this store (a script
        that called ``mlflow.log_*`` before ``Run.get_context()``): both write one run."""
        store = cls.__new__(cls)
        store.root = root
        store.experiment_id = experiment_id
        store.run_id = run_id
        store.dir = os.path.join(root, experiment_id, run_id)
        return store

    # -- layout ----------------------------------------------------------------------------

    def _experiment(self, name: str) -> str:
        os.makedirs(self.root, exist_ok=True)
        if not os.path.exists(os.path.join(self.root, "0", "meta.yaml")):
            self._write_experiment("0", "Default")
        for entry in sorted(os.listdir(self.root)):
            meta = os.path.join(self.root, entry, "meta.yaml")
            if _meta_value(meta, "name") == name:
                return entry
        # Derived from the name: processes of one run creating it at once agree.
        experiment_id = str(int(hashlib.sha256(name.encode()).hexdigest(), 16) % 10**18)
        self._write_experiment(experiment_id, name)
        return experiment_id

    def _write_experiment(self, experiment_id: str, name: str) -> None:
        folder = os.path.join(self.root, experiment_id)
        os.makedirs(folder, exist_ok=True)
        now = int(time.time() * 1000)
        text = (
            "artifact_location: %s\ncreation_time: %d\nexperiment_id: %s\n"
            "last_update_time: %d\nlifecycle_stage: active\nname: %s\n"
            % (
                _quote("file://" + os.path.abspath(folder)),
                now,
                _quote(experiment_id),
                now,
                _quote(name),
            )
        )
        _write_atomic(os.path.join(folder, "meta.yaml"), text)

    def _create_run(self, run_name: str, tags: Dict[str, str]) -> None:
        for sub in ("metrics", "params", "tags", "artifacts"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        now = int(time.time() * 1000)
        user = os.environ.get("USER") or os.environ.get("LOGNAME") or ""
        text = (
            "artifact_uri: %s\nend_time: null\nentry_point_name: ''\nexperiment_id: %s\n"
            "lifecycle_stage: active\nrun_id: %s\nrun_name: %s\nrun_uuid: %s\n"
            "source_name: ''\nsource_type: 4\nsource_version: ''\nstart_time: %d\n"
            "status: %d\ntags: []\nuser_id: %s\n"
            % (
                _quote("file://" + os.path.join(os.path.abspath(self.dir), "artifacts")),
                _quote(self.experiment_id),
                self.run_id,
                _quote(run_name),
                self.run_id,
                now,
                RUNNING,
                _quote(user),
            )
        )
        self.set_tag("mlflow.runName", run_name)
        self.set_tag("mlflow.user", user)
        for key, value in tags.items():
            self.set_tag(key, value)
        _write_atomic(os.path.join(self.dir, "meta.yaml"), text)

    # -- writes ----------------------------------------------------------------------------

    def _path(self, kind: str, name: str) -> str:
        path = os.path.join(self.dir, kind, *safe_name(name, kind[:-1]).split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def metric(self, name: str, value: float, step: int) -> None:
        line = "%d %r %d\n" % (int(time.time() * 1000), float(value), step)
        with open(self._path("metrics", name), "a", encoding="utf-8") as fh:
            fh.write(line)

    def set_tag(self, key: str, value: str) -> None:
        _write_atomic(self._path("tags", key), str(value))

    def set_param(self, key: str, value: str) -> None:
        _write_atomic(self._path("params", key), str(value))

    def tags(self) -> Dict[str, str]:
        found = {}
        folder = os.path.join(self.dir, "tags")
        for top, _dirs, files in os.walk(folder):
            for name in files:
                if name.endswith(".tmp"):
                    continue
                path = os.path.join(top, name)
                key = os.path.relpath(path, folder).replace(os.sep, "/")
                with open(path, encoding="utf-8") as fh:
                    found[key] = fh.read()
        return found

    def record(self, kind: str, name: str, value: Any, description: str = "") -> None:
        folder = os.path.join(self.dir, "artifacts", RECORD[0])
        os.makedirs(folder, exist_ok=True)
        entry = {
            "kind": kind,
            "name": name,
            "value": value,
            "description": description,
            "time": time.time(),
        }
        line = json.dumps(entry, default=str) + "\n"
        with open(os.path.join(folder, RECORD[1]), "a", encoding="utf-8") as fh:
            fh.write(line)

    def records(self) -> List[Dict[str, Any]]:
        path = os.path.join(self.dir, "artifacts", *RECORD)
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    def histories(self) -> Dict[str, List[float]]:
        """Every MLflow metric of the run (the run library's and ``mlflow.log_metric``'s):
        name -> values in the order logged."""
        found: Dict[str, List[float]] = {}
        folder = os.path.join(self.dir, "metrics")
        for top, _dirs, files in os.walk(folder):
            for name in files:
                path = os.path.join(top, name)
                key = os.path.relpath(path, folder).replace(os.sep, "/")
                values = []
                with open(path, encoding="utf-8") as fh:
                    for line in fh:
                        parts = line.split()
                        try:
                            values.append(float(parts[1]))
                        except (IndexError, ValueError):
                            continue
                found[key] = values
        return found

    def set_status(self, status: int) -> None:
        """Change only ``status`` and ``end_time`` of the run's meta.yaml (MLflow may have
        written the rest)."""
        path = os.path.join(self.dir, "meta.yaml")
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
        out = []
        for line in lines:
            if line.startswith("status:"):
                line = "status: %d" % status
            elif line.startswith("end_time:"):
                line = "end_time: %s" % (
                    "null" if status == RUNNING else str(int(time.time() * 1000))
                )
            out.append(line)
        _write_atomic(path, "\n".join(out) + "\n")
