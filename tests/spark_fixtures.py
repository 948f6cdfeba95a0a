"""Spark for the tests: ``spark-submit`` from the ``pyspark`` package and Java.

``local_spark`` checks that this machine's test interpreter has pyspark and that Java
runs. ``head_node_spark`` makes ``spark-submit`` usable by the SSH test user
``targets-test`` (tests/sshd.py), as on an HDInsight/HDP head node: pyspark is installed
once into the world-readable ``/opt/targets-test-pyspark`` and a wrapper
``/usr/local/bin/spark-submit`` exports ``SPARK_HOME`` and execs Spark's own script. An
existing ``/usr/local/bin/spark-submit`` is left alone.

Without Java or pyspark the tests are skipped with the reason, or failed when ``CI`` is
set (like tests/sshd.py).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sshd import _machine_lock, skip_or_fail

__all__ = ["HEAD_NODE_PYSPARK", "WRAPPER", "head_node_spark_fixture", "local_spark_fixture"]

HEAD_NODE_PYSPARK = Path("/opt/targets-test-pyspark")
WRAPPER = Path("/usr/local/bin/spark-submit")


def unavailable_reason() -> str | None:
    """Why this machine cannot run spark-submit locally, or None."""
    java = shutil.which("java")
    if java is None:
        return "Java is not installed: run `bash scripts/test-services.sh` or install a JRE 17"
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed: pip install -e '.[test]'"
    return None


@pytest.fixture(name="local_spark")
def local_spark_fixture() -> None:
    reason = unavailable_reason()
    if reason:
        skip_or_fail(reason)


def _install_head_node_spark() -> None:
    if not (HEAD_NODE_PYSPARK / "pyspark" / "bin" / "spark-submit").exists():
        uv = shutil.which("uv", path=os.path.dirname(sys.executable)) or shutil.which("uv")
        tmp = HEAD_NODE_PYSPARK.with_name(HEAD_NODE_PYSPARK.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        if uv:
            command = [uv, "pip", "install", "--python", sys.executable, "--target", str(tmp)]
        else:
            command = [sys.executable, "-m", "pip", "install", "--target", str(tmp)]
        subprocess.run([*command, "pyspark>=3.5"], check=True, capture_output=True)
        subprocess.run(["chmod", "-R", "a+rX", str(tmp)], check=True)
        shutil.rmtree(HEAD_NODE_PYSPARK, ignore_errors=True)
        tmp.rename(HEAD_NODE_PYSPARK)
        os.chmod(HEAD_NODE_PYSPARK, 0o755)
    if not WRAPPER.exists():
        home = HEAD_NODE_PYSPARK / "pyspark"
        tmp_wrapper = WRAPPER.with_name(".spark-submit.tmp")
        tmp_wrapper.write_text(
            "#!/bin/sh\n# Installed by the targets tests (tests/spark_fixtures.py).\n"
            f"export SPARK_HOME={home}\n"
            'exec "$SPARK_HOME/bin/spark-submit" "$@"\n'
        )
        tmp_wrapper.chmod(0o755)
        tmp_wrapper.rename(WRAPPER)


@pytest.fixture(name="head_node_spark", scope="session")
def head_node_spark_fixture() -> Path:
    """``/usr/local/bin/spark-submit`` usable by every user (installed once per machine)."""
    reason = unavailable_reason()
    if reason is None and os.geteuid() != 0:
        reason = "installing spark-submit for the SSH test user needs root"
    if reason:
        skip_or_fail(reason)
    with _machine_lock():
        _install_head_node_spark()
    assert WRAPPER.stat().st_mode & stat.S_IXOTH
    return WRAPPER
