"""The program the ``databricks`` kind runs on the driver (``_targets_wrapper.py``), kept
as source text: it is uploaded with each run, never imported here. It runs on the
cluster's Python and uses the standard library only."""

from __future__ import annotations

from typing import TypedDict

from targets.agent.protocol import Entry, ManifestRow

__all__ = ["COLLECTED", "RUN_LIBRARY_FOLDER", "WRAPPER", "ExitInfo", "WrapperSpec"]

#: Where the wrapper puts the run library in the driver's run folder (as the agent's
#: supervisor does for a containerised run: ``.targets/`` is never part of a snapshot).
RUN_LIBRARY_FOLDER = ".targets/runlib"
#: What comes back from the driver's run folder: name in the run's workspace folder ->
#: path in the driver's run folder (the agent's ``rundir.COLLECTED``).
COLLECTED = {"outputs": "outputs", "logs": "logs", "mlruns": ".targets/mlruns"}


class WrapperSpec(TypedDict):
    """``spec.json`` of a Databricks run, written by the ``databricks`` kind and read by
    the wrapper. Its objects are named by digest alone (the mode is in each row)."""

    run_id: str
    objects: str
    """The workspace folder of the objects."""
    files: list[ManifestRow]
    """The snapshot's manifest (rows go as lists, see :class:`ManifestRow`)."""
    entry: Entry
    environment_variables: dict[str, str]
    part_bytes: int
    """Files larger than this come back in parts (see ``_copy_back``)."""
    experiment: str | None
    """The run's experiment: ``run.experiment.name`` inside the run."""
    run_library: list[ManifestRow]
    """The run library's files (``azureml``, see ``targets/agent/runlib``), materialised
    below :data:`RUN_LIBRARY_FOLDER` and put first on the script's path; empty when the
    run keeps the real Azure ML SDK (``TARGETS_AZUREML_REAL=1``)."""


class ExitInfo(TypedDict, total=False):
    """``exit.json``, the wrapper's last word: the entry's exit code and what failed."""

    exit_code: int
    error: str | None


WRAPPER = r'''"""Written by `targets`: materialise a run folder from content-addressed objects,
run the user's entry point in it, copy ./outputs, ./logs and the run's MLflow store back.
Arguments: the driver's mount of workspace files, and the run's workspace folder."""
import hashlib, json, os, runpy, shutil, signal, subprocess, sys, tempfile, traceback

# name in the run's workspace folder -> path in the run folder (outputs first: the rest
# is small)
COLLECTED = (("outputs", "outputs"), ("logs", "logs"), ("mlruns", ".targets/mlruns"))
RUN_LIBRARY = ".targets/runlib"
KEEP_REAL_SDK = "TARGETS_AZUREML_REAL"


def _term(signum, frame):
    raise SystemExit(128 + signum)


def _split(src, dest, part_bytes):
    """Copy src as numbered parts of at most part_bytes into the folder dest."""
    os.makedirs(dest, exist_ok=True)
    digest, size, index = hashlib.sha256(), 0, 0
    with open(src, "rb") as fh:
        for data in iter(lambda: fh.read(part_bytes), b""):
            with open(os.path.join(dest, "%06d" % index), "wb") as out:
                out.write(data)
            digest.update(data)
            size += len(data)
            index += 1
    return {"size": size, "parts": index, "sha256": digest.hexdigest()}


def _copy_back(wd, base, part_bytes):
    """outputs/, logs/ and the MLflow store (as mlruns/) into the run's workspace folder.
    A file larger than part_bytes goes as parts under parts/ (listed in parts.json): the
    workspace export API the client reads with returns at most 10 MB."""
    large = {}
    for top, source in COLLECTED:
        root = os.path.join(wd, *source.split("/"))
        for dirpath, _dirs, names in os.walk(root):
            rel_dir = os.path.normpath(os.path.join(top, os.path.relpath(dirpath, root)))
            rel_dir = rel_dir.replace(os.sep, "/")
            try:
                os.makedirs(os.path.join(base, rel_dir), exist_ok=True)
            except OSError as exc:
                print("targets: could not copy %s back: %s" % (rel_dir, exc), file=sys.stderr)
            for name in names:
                rel = rel_dir + "/" + name
                src = os.path.join(dirpath, name)
                try:
                    if os.path.getsize(src) > part_bytes:
                        large[rel] = _split(src, os.path.join(base, "parts", rel), part_bytes)
                    else:
                        shutil.copyfile(src, os.path.join(base, rel))
                except OSError as exc:
                    print("targets: could not copy %s back: %s" % (rel, exc), file=sys.stderr)
    if large:
        with open(os.path.join(base, "parts.json"), "w") as fh:
            json.dump(large, fh)


def _keeps_real_sdk():
    return os.environ.get(KEEP_REAL_SDK, "").strip().lower() in ("1", "true", "yes")


def _run_library(spec, wd):
    """What the run library (``from azureml.core import Run`` inside the run) reads, and
    the library first on the path, unless the run keeps the real Azure ML SDK."""
    os.environ["AZUREML_RUN_ID"] = spec["run_id"]
    os.environ["TARGETS_OUTPUTS_DIR"] = os.path.join(wd, "outputs")
    os.environ["TARGETS_MLFLOW_STORE"] = os.path.join(wd, ".targets", "mlruns")
    experiment = spec.get("experiment")
    if experiment and "AZUREML_ARM_PROJECT_NAME" not in spec["environment_variables"]:
        os.environ["AZUREML_ARM_PROJECT_NAME"] = experiment
    if not spec.get("run_library") or _keeps_real_sdk():
        return
    library = os.path.join(wd, *RUN_LIBRARY.split("/"))
    sys.path.insert(0, library)
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = library + (os.pathsep + path if path else "")


def _end_run_context():
    """End the run library's run as the end of a process would (its atexit handler),
    before the store is copied back: the script ran inside this process."""
    package = sys.modules.get("azureml")
    module = sys.modules.get("azureml.core.run")
    if module is None or not getattr(package, "TARGETS_RUN_LIBRARY", False):
        return
    context = getattr(getattr(module, "Run", None), "_context", None)
    end = getattr(context, "_at_exit", None)
    if callable(end):
        try:
            end()
        except Exception as exc:
            print("targets: could not end the run's MLflow run: %s" % exc, file=sys.stderr)


def main():
    mount, folder = sys.argv[1], sys.argv[2]
    base = mount + folder
    with open(os.path.join(base, "spec.json")) as fh:
        spec = json.load(fh)
    objects = mount + spec["objects"]
    wd = tempfile.mkdtemp(prefix="targets-run-")
    for path, size, mode, digest, link in spec["files"] + spec.get("run_library", []):
        dest = os.path.join(wd, *path.split("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if link is not None:
            os.symlink(link, dest)
            continue
        shutil.copyfile(os.path.join(objects, digest), dest)
        os.chmod(dest, mode)
    for top in ("outputs", "logs"):
        os.makedirs(os.path.join(wd, top), exist_ok=True)
    os.environ.update(spec["environment_variables"])
    os.environ["TARGETS_RUN_ID"] = spec["run_id"]
    _run_library(spec, wd)
    os.chdir(wd)
    signal.signal(signal.SIGTERM, _term)
    code, error = 0, None
    entry = spec["entry"]
    try:
        if "script" in entry:
            script = os.path.join(wd, entry["script"])
            sys.argv = [script] + list(entry["arguments"])
            sys.path.insert(0, os.path.dirname(script))
            runpy.run_path(script, run_name="__main__")
        else:
            # The same rule as every other kind: a list is an argv, a string is for /bin/sh.
            command = entry["command"]
            if isinstance(command, list):
                argv = [str(c) for c in command]
            else:
                argv = ["/bin/sh", "-c", command]
            try:
                code = subprocess.call(argv)
            except OSError as exc:
                print("targets: cannot run %s: %s" % (argv[0], exc), file=sys.stderr)
                code, error = 127, "cannot run %s: %s" % (argv[0], exc)
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code, error = 1, str(exc.code)
    except BaseException as exc:
        # As at the end of a process: the traceback, and the run library marks the run
        # failed (its excepthook).
        try:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        except Exception:
            traceback.print_exc()
        code, error = 1, "%s: %s" % (type(exc).__name__, exc)
    _end_run_context()
    sys.stdout.flush()
    sys.stderr.flush()
    _copy_back(wd, base, int(spec["part_bytes"]))
    with open(os.path.join(base, "exit.json"), "w") as fh:
        json.dump({"exit_code": code, "error": error}, fh)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
'''
