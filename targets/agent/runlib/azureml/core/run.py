"""``azureml.core.run.Run`` inside a run under ``targets``.

``Run.get_context()`` returns the run the script belongs to. Its metrics, tags and records
go into the run's MLflow file store (``TARGETS_MLFLOW_STORE``, set by the supervisor),
which comes back with the outputs; files go into ``./outputs``. Outside a run
(``allow_offline=True``) an offline run keeps everything in memory, as v1's does.

``mlflow.log_*`` calls of the same script land in the same MLflow run, in either order
(MLflow's ``MLFLOW_RUN_ID``, or MLflow's active run adopted). In a child run
(``TARGETS_PARENT_RUN_ID``), ``run.parent`` logs into an MLflow run of the child's store
tagged with the parent's id, which the client shows as the parent's.
"""

import atexit
import numbers
import os
import shutil
import sys
import uuid
from typing import Any, Callable, Dict, Iterable, List, Optional

from ._service import MODELS, SECRETS, SUBMIT, Experiment, Workspace, refuse
from ._shape import v1_metrics
from ._store import FAILED, FINISHED, KILLED, RUNNING, Store, safe_name

__all__ = ["Run"]

_STATUS_NAMES = {RUNNING: "Running", FINISHED: "Completed", FAILED: "Failed", KILLED: "Canceled"}


def _number(value: Any) -> Optional[float]:
    """The value as an MLflow metric value, or None when it is not a number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Real):
        return float(value)
    try:  # numpy scalars and 0-d arrays
        item = value.item()
    except (AttributeError, ValueError, TypeError):
        return None
    return float(item) if isinstance(item, numbers.Real) else None


def _plain(value: Any) -> Any:
    """JSON-friendly form of a logged value (numpy scalars become numbers)."""
    number = _number(value)
    if number is not None and not isinstance(value, bool):
        return int(number) if isinstance(value, numbers.Integral) else number
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (str, bool)) or value is None:
        return value
    tolist = getattr(value, "tolist", None)
    return _plain(tolist()) if callable(tolist) else str(value)


class Run:
    """A run as a v1 training script sees it."""

    _context: Optional["Run"] = None

    def __init__(
        self,
        experiment: Experiment,
        run_id: str,
        store: Optional[Store] = None,
        outputs: str = "outputs",
        parent: Optional["Run"] = None,
        make_store: Optional[Callable[[], Store]] = None,
    ) -> None:
        self.experiment = experiment
        self.id = run_id
        self._store_made = store
        self._make_store = make_store
        self._outputs = outputs
        self._parent = parent
        self._children: List["Run"] = []
        self._steps: Dict[str, int] = {}
        self._status = RUNNING
        self._offline: Dict[str, Any] = {"metrics": [], "tags": {}}

    @property
    def _store(self) -> Optional[Store]:
        """The run's MLflow run; made on first use for a run that logs lazily (the
        parent seen from a child run)."""
        if self._store_made is None and self._make_store is not None:
            self._store_made, self._make_store = self._make_store(), None
        return self._store_made

    def __repr__(self) -> str:
        return "Run(id=%r, experiment=%r, status=%r)" % (
            self.id,
            self.experiment.name,
            self.get_status(),
        )

    # -- the context -----------------------------------------------------------------------

    @classmethod
    def get_context(
        cls, allow_offline: bool = True, used_for_context_manager: bool = False, **kwargs: Any
    ) -> "Run":
        if cls._context is not None:
            return cls._context
        run_id = os.environ.get("AZUREML_RUN_ID") or os.environ.get("TARGETS_RUN_ID")
        store_root = os.environ.get("TARGETS_MLFLOW_STORE")
        experiment_name = (
            os.environ.get("AZUREML_ARM_PROJECT_NAME")
            or os.environ.get("MLFLOW_EXPERIMENT_NAME")
            or "Default"
        )
        workspace = Workspace(name=os.environ.get("AZUREML_ARM_WORKSPACE_NAME", ""))
        if run_id and store_root:
            store = _mlflow_run(store_root) or Store(store_root, experiment_name, run_id, run_id)
            store.set_tag("targets.run_id", run_id)
            _share_with_mlflow(store)
            outputs = os.environ.get("TARGETS_OUTPUTS_DIR") or os.path.abspath("outputs")
            experiment = Experiment(workspace, experiment_name)
            run = cls(experiment, run_id, store, outputs)
            parent_id = os.environ.get("TARGETS_PARENT_RUN_ID")
            if parent_id:
                store.set_tag("targets.parent_run_id", parent_id)
                run._parent = cls(
                    experiment,
                    parent_id,
                    outputs=os.path.join(outputs, "parent"),
                    make_store=lambda: _parent_store(store_root, experiment_name, parent_id),
                )
            atexit.register(run._at_exit)
            _watch_uncaught(run)
        elif allow_offline:
            run = cls(Experiment(workspace, "offline"), "OfflineRun_%s" % uuid.uuid4())
        else:
            raise RuntimeError(
                "Run.get_context(allow_offline=False) outside a run: this process was not "
                "started by targets (no AZUREML_RUN_ID / TARGETS_MLFLOW_STORE in its "
                "environment). Start it with `targets run`."
            )
        cls._context = run
        return run

    # -- metrics ---------------------------------------------------------------------------

    def _metric(self, name: str, value: Any, step: Any = None) -> None:
        """One point of the MLflow metric ``name`` (numbers only; the rest is recorded)."""
        safe_name(name, "metric")
        number = _number(value)
        if self._store is None or number is None:
            return
        at = self._steps.get(name, 0) if step is None else int(step)
        self._store.metric(name, number, at)
        self._steps[name] = at + 1

    def _record(self, kind: str, name: str, value: Any, description: str = "") -> None:
        safe_name(name, "metric")
        if self._store is None:
            self._offline["metrics"].append({"kind": kind, "name": name, "value": _plain(value)})
        else:
            self._store.record(kind, name, _plain(value), description)

    def log(self, name: str, value: Any, description: str = "", step: Any = None) -> None:
        """One value of the metric ``name`` (logging it again makes a series)."""
        self._metric(name, value, step)
        self._record("scalar", name, value, description)

    def log_list(self, name: str, value: Iterable[Any], description: str = "") -> None:
        values = list(value)
        for item in values:
            self._metric(name, item)
        self._record("list", name, values, description)

    def log_row(self, name: str, description: Optional[str] = None, **kwargs: Any) -> None:
        """One row of the table ``name``: each numeric column is the MLflow metric
        ``name.column``."""
        for column, value in kwargs.items():
            self._metric("%s.%s" % (name, column), value)
        self._record("row", name, kwargs, description or "")

    def log_table(self, name: str, value: Dict[str, Iterable[Any]], description: str = "") -> None:
        table = {str(k): list(v) for k, v in value.items()}
        for column, values in table.items():
            for item in values:
                self._metric("%s.%s" % (name, column), item)
        self._record("table", name, table, description)

    def _log_json(self, kind: str, name: str, value: Any, description: str = "") -> None:
        self._record(kind, name, value, description)

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        self._log_json("confusion_matrix", name, value, description)

    def log_accuracy_table(self, name: str, value: Any, description: str = "") -> None:
        self._log_json("accuracy_table", name, value, description)

    def log_predictions(self, name: str, value: Any, description: str = "") -> None:
        self._log_json("predictions", name, value, description)

    def log_residuals(self, name: str, value: Any, description: str = "") -> None:
        self._log_json("residuals", name, value, description)

    def log_image(
        self, name: str, path: Optional[str] = None, plot: Any = None, description: str = ""
    ) -> None:
        """The image file ``path``, or the matplotlib figure/pyplot ``plot``, saved as
        ``outputs/<name>.png`` (or the file's own extension) and recorded."""
        safe_name(name, "image")
        if (path is None) == (plot is None):
            raise ValueError("log_image(%r): give exactly one of path= or plot=" % name)
        if path is not None:
            ext = os.path.splitext(str(path))[1] or ".png"
            dest = self._output_path(name + ext if not name.endswith(ext) else name)
            _copy(str(path), dest)
        else:
            dest = self._output_path(name if name.endswith(".png") else name + ".png")
            savefig = getattr(plot, "savefig", None)
            if savefig is None:
                raise TypeError(
                    "log_image(%r): plot= must have savefig() (a matplotlib "
                    "figure or pyplot)" % name
                )
            savefig(dest)
        rel = os.path.relpath(dest, os.path.dirname(self._outputs))
        self._log_json("image", name, rel.replace(os.sep, "/"), description)

    def get_metrics(self, name: Optional[str] = None, **kwargs: Any) -> Dict[str, Any]:
        """What this run logged, as v1 returns it: a single value, a list for a series or a
        list, ``{column: [values]}`` for a table."""
        store = self._store
        if store is None:
            found = v1_metrics(self._offline["metrics"])
        else:
            found = v1_metrics(store.records(), store.histories())
        return found if name is None else {name: found[name]} if name in found else {}

    # -- tags and properties -----------------------------------------------------------------

    def tag(self, key: str, value: Any = None) -> None:
        safe_name(key, "tag")
        text = "" if value is None else str(value)
        if self._store is None:
            self._offline["tags"][key] = text
        else:
            self._store.set_tag(key, text)

    def set_tags(self, tags: Any) -> None:
        if isinstance(tags, dict):
            for key, value in tags.items():
                self.tag(key, value)
        elif isinstance(tags, str):
            self.tag(tags)
        else:
            for key in tags:
                self.tag(key)

    def get_tags(self) -> Dict[str, str]:
        if self._store is None:
            return dict(self._offline["tags"])
        own = self._store.tags().items()
        return {k: v for k, v in own if not k.startswith(("mlflow.", "targets.", "azureml."))}

    def add_properties(self, properties: Dict[str, Any]) -> None:
        """Properties are immutable in v1, like MLflow params: stored as params."""
        for key, value in properties.items():
            safe_name(key, "property")
            if self._store is not None:
                self._store.set_param(key, str(value))

    # -- files -------------------------------------------------------------------------------

    def _output_path(self, name: str) -> str:
        """``name`` (``outputs/x``, ``logs/x`` or ``x``) as a path under the run's folder."""
        parts = safe_name(name, "file").replace("\\", "/").split("/")
        base = self._outputs
        if parts[0] == "outputs" and len(parts) > 1:
            parts = parts[1:]
        elif parts[0] == "logs" and len(parts) > 1:
            base, parts = os.path.join(os.path.dirname(self._outputs), "logs"), parts[1:]
        path = os.path.join(base, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def upload_file(self, name: str, path_or_stream: Any, datastore_name: Any = None) -> None:
        """Copy a file (or the bytes of a stream) into ``./outputs/<name>``."""
        dest = self._output_path(name)
        if hasattr(path_or_stream, "read"):
            data = path_or_stream.read()
            with open(dest, "wb") as fh:
                fh.write(data.encode() if isinstance(data, str) else data)
        else:
            _copy(str(path_or_stream), dest)

    def upload_files(self, names: List[str], paths: List[str], **kwargs: Any) -> None:
        if len(names) != len(paths):
            raise ValueError(
                "upload_files: %d names for %d paths; give one name per path"
                % (len(names), len(paths))
            )
        for index, name in enumerate(names):
            self.upload_file(name, paths[index])

    def upload_folder(self, name: str, path: str, datastore_name: Any = None) -> None:
        if not os.path.isdir(path):
            raise ValueError("upload_folder(%r, %r): no such folder" % (name, path))
        for top, _dirs, files in os.walk(path):
            for file_name in files:
                source = os.path.join(top, file_name)
                rel = os.path.relpath(source, path).replace(os.sep, "/")
                self.upload_file(name.rstrip("/") + "/" + rel, source)

    def get_file_names(self) -> List[str]:
        names = []
        base = os.path.dirname(self._outputs)
        for top_name in ("outputs", "logs"):
            top = self._outputs if top_name == "outputs" else os.path.join(base, "logs")
            for folder, _dirs, files in os.walk(top):
                for file_name in files:
                    rel = os.path.relpath(os.path.join(folder, file_name), top)
                    names.append(top_name + "/" + rel.replace(os.sep, "/"))
        return sorted(names)

    def download_file(
        self, name: str, output_file_path: Optional[str] = None, **kwargs: Any
    ) -> None:
        source = self._output_path(name)
        _copy(source, output_file_path or os.path.basename(source))

    # -- status, parent and children ---------------------------------------------------------

    def get_status(self) -> str:
        return _STATUS_NAMES.get(self._status, "Running")

    def _end(self, status: int) -> None:
        if self._status == RUNNING:
            self._status = status
            if self._store is not None:
                self._store.set_status(status)

    def complete(self, _set_status: bool = True) -> None:
        self._end(FINISHED)

    def fail(
        self, error_details: Any = None, error_code: Any = None, _set_status: bool = True
    ) -> None:
        if error_details is not None and self._store is not None:
            self._store.set_tag("azureml.error", str(error_details))
        self._end(FAILED)

    def cancel(self) -> None:
        self._end(KILLED)

    def _at_exit(self) -> None:
        for child in self._children:
            child._end(FINISHED)
        parent = self._parent
        if parent is not None and parent._store_made is not None:
            parent._store_made.set_status(FINISHED)  # what this run logged on its parent
        self._end(FINISHED)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        self._end(FINISHED if kind is None else FAILED)

    @property
    def parent(self) -> Optional["Run"]:
        return self._parent

    def child_run(
        self,
        name: Optional[str] = None,
        run_id: Optional[str] = None,
        outputs: Optional[str] = None,
    ) -> "Run":
        """A child run: its own MLflow run (tagged with this run as parent), its files in
        ``outputs/<child id>/`` unless ``outputs`` names a folder."""
        child_id = run_id or "%s_%d" % (self.id, len(self._children) + 1)
        store = None
        if self._store is not None:
            store = Store(
                self._store.root,
                self.experiment.name,
                name or child_id,
                child_id,
                {
                    "mlflow.parentRunId": self._store.run_id,
                    "targets.run_id": self.id,
                    "targets.child_id": child_id,
                },
            )
        child = Run(
            self.experiment,
            child_id,
            store,
            outputs or os.path.join(self._outputs, safe_name(child_id, "run")),
            self,
        )
        self._children.append(child)
        return child

    def get_children(self, recursive: bool = False, **kwargs: Any) -> List["Run"]:
        found = list(self._children)
        if recursive:
            for child in self._children:
                found.extend(child.get_children(recursive=True))
        return found

    # -- what needs the service --------------------------------------------------------------

    def register_model(self, *args: Any, **kwargs: Any) -> Any:
        return refuse("Run.register_model()", MODELS)

    def get_secret(self, *args: Any, **kwargs: Any) -> Any:
        return refuse("Run.get_secret()", SECRETS)

    def get_secrets(self, *args: Any, **kwargs: Any) -> Any:
        return refuse("Run.get_secrets()", SECRETS)

    def submit_child(self, *args: Any, **kwargs: Any) -> Any:
        return refuse("Run.submit_child()", SUBMIT)

    @property
    def input_datasets(self) -> Dict[str, Any]:
        return _Refusing("Run.input_datasets[...]")

    def get_details(self) -> Dict[str, Any]:
        return {
            "runId": self.id,
            "status": self.get_status(),
            "target": os.environ.get("TARGETS_TARGET", ""),
            "properties": {},
            "inputDatasets": [],
            "outputDatasets": [],
        }


class _Refusing(dict):  # type: ignore[type-arg]
    def __init__(self, call: str) -> None:
        super().__init__()
        self._call = call

    def __missing__(self, key: str) -> Any:
        from ._service import DATA

        return refuse("%s (%r)" % (self._call, key), DATA)


def _parent_store(root: str, experiment: str, parent_id: str) -> Store:
    """Where a child run's ``run.parent.log(...)`` goes: an MLflow run of the child's own
    store (a run writes nowhere else), tagged with the parent's id and the child's, which
    the client shows as the parent's (``targets.runs.Run.get_metrics``)."""
    child_id = os.environ.get("AZUREML_RUN_ID") or os.environ.get("TARGETS_RUN_ID") or ""
    return Store(
        root,
        experiment,
        parent_id,
        "parent:%s:%s" % (parent_id, child_id),
        {"targets.run_id": parent_id, "targets.logged_by": child_id},
    )


def _same_store(uri: str, root: str) -> bool:
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    if "://" in path or not path:
        return False
    return os.path.realpath(path) == os.path.realpath(root)


def _mlflow_run(root: str) -> Optional[Store]:
    """The MLflow run the script already started in the run's store (``mlflow.log_*``
    before ``Run.get_context()``), so that both write one run; else None."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return None
    try:
        active = mlflow.active_run()
        uri = str(mlflow.get_tracking_uri())
    except Exception:  # an mlflow too old or half-imported: keep our own run
        return None
    if active is None or not _same_store(uri, root):
        return None
    return Store.attach(root, str(active.info.experiment_id), str(active.info.run_id))


def _share_with_mlflow(store: Store) -> None:
    """Later ``mlflow.log_*`` calls of the script (and of processes it starts) resume
    this MLflow run instead of starting a second one: MLflow's ``MLFLOW_RUN_ID``, when the
    run's tracking URI is this store and nothing else chose a run."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if "MLFLOW_RUN_ID" in os.environ or not _same_store(uri, store.root):
        return
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        try:
            if mlflow.active_run() is not None:
                return
        except Exception:
            return
    os.environ["MLFLOW_RUN_ID"] = store.run_id


def _copy(source: str, dest: str) -> None:
    if os.path.exists(dest) and os.path.samefile(source, dest):
        return
    shutil.copyfile(source, dest)


def _watch_uncaught(run: Run) -> None:
    """An uncaught exception marks the run failed (the process exit decides the rest)."""
    previous = sys.excepthook

    def hook(kind: Any, value: Any, tb: Any) -> None:
        run._end(FAILED)
        previous(kind, value, tb)

    sys.excepthook = hook
