"""``framework: pyspark`` on the target: run the script with ``spark-submit`` (target side).

Stdlib only, Python >= 3.8. The supervisor calls :func:`prepare` while the run is
Preparing (after the environment is ready): it finds ``spark-submit``, packs a
system-managed environment for YARN executors when needed, and records the plan in the
in-memory spec. :func:`argv` and :func:`environ` then turn the plan into the command
line and its variables; :func:`after_stop` asks YARN to kill the application when a
run on a YARN master is cancelled or times out.

What the client puts in ``spec.json`` (see ``run_spec`` in ``targets/compute/_agent.py``)::

    "framework": "pyspark",
    "spark": {"configuration": {...}, "packages": ["g:a:v"], "repositories": [...],
              "deploy_mode": "cluster" | "client"}

and a target kind may add, through the run's variables, ``TARGETS_SPARK_MASTER`` (the
default master, e.g. ``yarn``) and ``TARGETS_SPARK_SUBMIT`` (the path of spark-submit).
``TARGETS_SPARK_SUBMIT`` in the supervisor's own environment is honoured as well.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import subprocess
import tarfile
from typing import Any, BinaryIO, Final

from .envs import EnvError
from .protocol import RunSpec

__all__ = ["SparkError", "after_stop", "argv", "environ", "is_pyspark", "pack", "prepare"]

PLAN: Final = "_spark_plan"
NO_SPARK = "no spark-submit on the target; install Spark or pyspark"
_APP_ID = re.compile(rb"application_\d+_\d+")


class SparkError(EnvError):
    """The run cannot go through spark-submit (the run fails while Preparing)."""


def is_pyspark(spec: RunSpec) -> bool:
    return spec.get("framework") == "pyspark"


def _variables(spec: RunSpec) -> dict[str, str]:
    return {str(k): str(v) for k, v in (spec.get("environment_variables") or {}).items()}


def _site_packages_pyspark(python: str) -> str | None:
    """The pyspark package of the environment whose interpreter is ``python``, found
    on disk (no interpreter start)."""
    prefix = os.path.dirname(os.path.dirname(python))
    for pattern in ("lib/python3*/site-packages/pyspark", "lib/site-packages/pyspark"):
        for found in sorted(glob.glob(os.path.join(prefix, pattern))):
            if os.path.isfile(os.path.join(found, "bin", "spark-submit")):
                return found
    return None


def find_spark_submit(spec: RunSpec, python: str) -> dict[str, str | None]:
    """``{"path", "spark_home"}`` of the spark-submit this run uses. Order: an explicit
    ``TARGETS_SPARK_SUBMIT`` (the run's, then the agent's), the environment's own pyspark,
    then ``PATH``. Raises SparkError when there is none."""
    explicit = _variables(spec).get("TARGETS_SPARK_SUBMIT") or os.environ.get(
        "TARGETS_SPARK_SUBMIT"
    )
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise SparkError("%s (%s is not an executable file)" % (NO_SPARK, explicit))
        return {"path": explicit, "spark_home": _home_of(explicit)}
    package = _site_packages_pyspark(python)
    if package is not None:
        return {"path": os.path.join(package, "bin", "spark-submit"), "spark_home": package}
    search = os.pathsep.join([os.path.dirname(python), os.environ.get("PATH", "")])
    found = shutil.which("spark-submit", path=search)
    if found is None:
        raise SparkError(NO_SPARK)
    return {"path": found, "spark_home": _home_of(found)}


def _home_of(spark_submit: str) -> str | None:
    """SPARK_HOME for a spark-submit inside a Spark distribution or a pyspark package
    (``<home>/bin/spark-submit`` with ``<home>/jars``); None for wrappers, which know
    their own."""
    home = os.path.dirname(os.path.dirname(os.path.realpath(spark_submit)))
    return home if os.path.isdir(os.path.join(home, "jars")) else None


def _master(spec: RunSpec) -> str:
    configuration = (spec.get("spark") or {}).get("configuration") or {}
    return str(
        configuration.get("spark.master")
        or _variables(spec).get("TARGETS_SPARK_MASTER")
        or "local[*]"
    )


def _is_yarn(master: str) -> bool:
    return master.split(":", 1)[0] == "yarn"


def pack(env_dir: str, dest: str, log: BinaryIO) -> str:
    """A ``.tar.gz`` of the environment folder at ``dest`` (cached: an existing one is
    reused), with paths relative to the environment's root, so that
    ``--archives dest#environment`` gives executors ``./environment/bin/python``.
    Uses ``conda-pack`` for conda environments when it is installed. Written to a
    temporary name first: a failed pack leaves nothing that looks finished."""
    if os.path.isfile(dest):
        log.write(("# reusing packed environment %s\n" % dest).encode())
        return dest
    tmp = "%s.tmp-%d" % (dest, os.getpid())
    log.write(("# packing environment %s for the executors\n" % env_dir).encode())
    conda_pack = shutil.which("conda-pack")
    try:
        if conda_pack and os.path.isdir(os.path.join(env_dir, "conda-meta")):
            done = subprocess.run(
                [conda_pack, "-p", env_dir, "-o", tmp, "--format", "tar.gz", "-q"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            if done.returncode != 0:
                raise SparkError("conda-pack failed with exit code %d" % done.returncode)
        else:
            with tarfile.open(tmp, "w:gz", compresslevel=1) as archive:
                for name in sorted(os.listdir(env_dir)):
                    if name.startswith(".targets"):  # our marker files
                        continue
                    archive.add(os.path.join(env_dir, name), arcname=name)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)
    return dest


def prepare(
    spec: RunSpec,
    env_result: dict[str, Any],
    root: str,
    log: BinaryIO,
    library: str | None = None,
) -> dict[str, Any]:
    """Plan the spark-submit call and keep it in ``spec`` for :func:`argv` and
    :func:`environ`. ``library`` is a zip of the run library (``azureml``), shipped to a
    driver that runs on a YARN cluster node (cluster deploy mode). Raises SparkError (a
    Preparing failure) when Spark is missing."""
    if (spec.get("environment") or {}).get("docker"):
        raise SparkError("framework pyspark does not run in a Docker environment")
    python = str(env_result["python"])
    found = find_spark_submit(spec, python)
    spark = spec.get("spark") or {}
    master = _master(spec)
    confs = dict((str(k), str(v)) for k, v in (spark.get("configuration") or {}).items())
    confs.pop("spark.master", None)
    args: list[str] = [str(found["path"]), "--master", master]
    yarn = _is_yarn(master)
    deploy_mode = spark.get("deploy_mode") or "client"
    if yarn:
        args += ["--deploy-mode", deploy_mode]
    if "spark.app.name" not in confs:
        args += ["--name", str(spec.get("run_id"))]
    env_dir = env_result.get("env_dir")
    if yarn and env_dir and "spark.pyspark.python" not in confs:
        # Executors run elsewhere: ship the environment with the job.
        archive = pack(
            env_dir, os.path.join(root, "envs", os.path.basename(env_dir) + ".tar.gz"), log
        )
        args += ["--archives", archive + "#environment"]
        confs["spark.pyspark.python"] = "./environment/bin/python"
        if deploy_mode == "client":
            confs.setdefault("spark.pyspark.driver.python", python)
    else:
        confs.setdefault("spark.pyspark.python", python)
    if yarn and deploy_mode == "cluster" and library:
        # The driver runs on a cluster node, where the head node's PYTHONPATH and the
        # run's variables do not go: ship the run library with the job (an unchanged v1
        # script imports azureml.core there). Its Run.get_context() is an offline run:
        # what it logs stays on that node, like its ./outputs.
        given = confs.get("spark.submit.pyFiles")
        confs["spark.submit.pyFiles"] = library + ("," + given if given else "")
        run_id = str(spec.get("run_id"))
        for key, value in (
            ("AZUREML_RUN_ID", run_id),
            ("TARGETS_RUN_ID", run_id),
            ("AZUREML_ARM_PROJECT_NAME", spec.get("experiment")),
        ):
            if value:
                confs.setdefault("spark.yarn.appMasterEnv." + key, str(value))
    for key in sorted(confs):
        args += ["--conf", "%s=%s" % (key, confs[key])]
    packages = [str(p) for p in spark.get("packages") or ()]
    if packages:
        args += ["--packages", ",".join(packages)]
    repositories = [str(r) for r in spark.get("repositories") or ()]
    if repositories:
        args += ["--repositories", ",".join(repositories)]
    plan = {"argv": args, "spark_home": found["spark_home"], "yarn": yarn}
    log.write(("# spark-submit: %s (master %s)\n" % (found["path"], master)).encode())
    spec[PLAN] = plan
    return plan


def argv(spec: RunSpec) -> list[str]:
    """The command line: spark-submit, its options, the script and its arguments."""
    entry = spec["entry"]
    if not entry.get("script"):
        raise SparkError("framework pyspark needs a script, not a command")
    return [*spec[PLAN]["argv"], entry["script"], *[str(a) for a in entry.get("arguments") or ()]]


def environ(spec: RunSpec, env: dict[str, str]) -> dict[str, str]:
    """The run's variables plus SPARK_HOME when spark-submit is inside a Spark folder
    (needed when it is not called through its own ``bin`` folder's parent layout)."""
    plan = spec.get(PLAN)
    if plan and plan.get("spark_home") and not env.get("SPARK_HOME"):
        env = dict(env, SPARK_HOME=str(plan["spark_home"]))
    return env


def after_stop(spec: RunSpec, driver_log: str) -> None:
    """Best effort after a cancel or timeout on a YARN master: ``yarn application -kill``
    for the application id that spark-submit printed (in cluster mode the application
    outlives the spark-submit process the supervisor stopped)."""
    plan = spec.get(PLAN)
    if not plan or not plan.get("yarn"):
        return
    yarn = shutil.which("yarn")
    try:
        with open(driver_log, "rb") as fh:
            ids = _APP_ID.findall(fh.read())
    except OSError:
        return
    if not yarn or not ids:
        return
    with open(driver_log, "ab") as out, contextlib.suppress(OSError, subprocess.SubprocessError):
        app = ids[-1].decode()
        out.write(("\n[targets] yarn application -kill %s\n" % app).encode())
        subprocess.run(
            [yarn, "application", "-kill", app], stdout=out, stderr=subprocess.STDOUT, timeout=60
        )
