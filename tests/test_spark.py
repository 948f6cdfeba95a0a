"""framework: pyspark with Spark's real spark-submit (from the pyspark package) and Java:
on the local target, and on an HDInsight-style head node (the test sshd) with a
``local[2]`` master. No YARN here: YARN-only paths are tested as command lines."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from targets.agent import spark, supervisor
from targets.workspace import Workspace
from tests.spark_fixtures import head_node_spark_fixture, local_spark_fixture  # noqa: F401
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401
from tests.test_run_context import assert_logged_everything, copy_example

JOB = """
import json, pathlib, sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
words = spark.sparkContext.parallelize("a b a c a b".split(), 2)
counts = dict(words.map(lambda w: (w, 1)).reduceByKey(lambda x, y: x + y).collect())
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/counts.json").write_text(json.dumps({
    "counts": counts,
    "args": sys.argv[1:],
    "app_name": spark.conf.get("spark.app.name"),
    "custom": spark.conf.get("spark.targets.test"),
    "master": spark.sparkContext.master,
}))
print("counted", sum(counts.values()))
spark.stop()
"""

CONF = (
    "spark:\n  configuration:\n    spark.app.name: counted-by-targets\n"
    "    spark.targets.test: seen\n    spark.ui.enabled: 'false'\n"
)


def _outputs(project: Path) -> dict[str, object]:
    run = Workspace(project).ledger.list(limit=1)[0]
    folder = project / ".targets" / "runs" / run.id
    return json.loads((folder / "outputs" / "counts.json").read_text())


def test_pyspark_job_on_the_local_target(local_spark, project, write, cli):
    write(project / "job.py", JOB)
    write(
        project / "rc.yml",
        "script: job.py\narguments: [--n, '3']\ntarget: local\nframework: pyspark\n"
        + CONF
        + "    spark.master: local[2]\n",
    )
    result = cli("run", "rc.yml", timeout=300)
    assert result.code == 0, result
    assert "counted 6" in result.out
    got = _outputs(project)
    assert got["counts"] == {"a": 3, "b": 2, "c": 1}
    assert got["args"] == ["--n", "3"]
    assert got["app_name"] == "counted-by-targets" and got["custom"] == "seen"
    assert got["master"] == "local[2]"


def test_pyspark_without_spark_submit_fails_while_preparing(project, write, cli):
    write(project / "job.py", "print('never')\n")
    write(project / "rc.yml", "script: job.py\ntarget: local\nframework: pyspark\n")
    result = cli("run", "rc.yml", env={"TARGETS_SPARK_SUBMIT": "/nonexistent/spark-submit"})
    assert result.code != 0, result
    assert "no spark-submit on the target; install Spark or pyspark" in result.out + result.err
    run = Workspace(project).ledger.list(limit=1)[0]
    assert run.status == "Failed"
    assert "never" not in result.out


def _attach(cli, sshd: SSHServer, name: str, *extra: str):
    return cli(
        "attach",
        name,
        "--type",
        "hdinsight",
        "--address",
        sshd.host,
        "--ssh-port",
        str(sshd.port),
        "--username",
        sshd.user,
        "--ssh-key",
        str(sshd.key),
        "--accept-host-key",
        *extra,
    )


@pytest.fixture
def hdi(head_node_spark, sshd: SSHServer, project, cli) -> str:
    attached = _attach(cli, sshd, "hdi", "--spark-master", "local[2]")
    assert attached.code == 0, attached
    return "hdi"


def test_hdinsight_attach_records_spark(hdi, cli, head_node_spark):
    shown = cli("show", hdi, "-o", "json").json()
    assert shown["kind"] == "hdinsight"
    facts = shown["facts"]
    assert facts["spark_submit"] == str(head_node_spark)
    assert facts["spark_version"][0].isdigit()
    assert facts["spark_master"] == "local[2]"


def test_pyspark_job_on_the_head_node_with_its_environment_on_the_executors(
    hdi, project, write, cli, shared_wheels
):
    write(
        project / "conda_dependencies.yml",
        "dependencies:\n- pip:\n  - --no-index\n"
        f"  - --find-links {shared_wheels}\n  - tinypkg==1.0\n",
    )
    write(
        project / "job.py",
        JOB.replace(
            "counts = dict(",
            "def tag(w):\n    import tinypkg\n    return w + tinypkg.VERSION\n"
            "counts = dict(words.map(tag).map(lambda w: (w, 1))"
            ".reduceByKey(lambda x, y: x + y).collect())\nunused = (",
        ),
    )
    write(
        project / "rc.yml",
        f"script: job.py\ntarget: {hdi}\nframework: pyspark\nenvironment:\n  python:\n"
        "    conda_dependencies_file: conda_dependencies.yml\n" + CONF,
    )
    result = cli("run", "rc.yml", timeout=600)
    assert result.code == 0, result
    got = _outputs(project)
    assert got["counts"] == {"a1.0": 3, "b1.0": 2, "c1.0": 1}
    assert got["app_name"] == "counted-by-targets"
    assert got["master"] == "local[2]"


def test_hdinsight_attach_without_spark_submit_attaches_nothing(sshd, project, cli):
    result = _attach(cli, sshd, "nospark", "--spark-submit", "/nonexistent/bin/spark-submit")
    assert result.code != 0, result
    assert "no spark-submit on" in result.err and "--spark-submit PATH" in result.err
    listed = cli("list", "-o", "json").json()
    assert "nospark" not in {t["name"] for t in listed}


# -- YARN paths, as command lines (no YARN cluster here) ------------------------------------


def _spec(tmp_path: Path, **spark_section: object) -> dict[str, object]:
    submit = tmp_path / "bin" / "spark-submit"
    submit.parent.mkdir(exist_ok=True)
    submit.write_text("#!/bin/sh\n")
    submit.chmod(0o755)
    return {
        "run_id": "r1",
        "framework": "pyspark",
        "entry": {"script": "job.py", "arguments": ["x"]},
        "environment": {"managed": True},
        "environment_variables": {
            "TARGETS_SPARK_SUBMIT": str(submit),
            "TARGETS_SPARK_MASTER": "yarn",
        },
        "spark": {
            "configuration": {"spark.executor.memory": "2g"},
            "packages": ["org.example:lib:1.0"],
            "repositories": ["https://repo.example/maven"],
            **spark_section,
        },
    }


def test_yarn_cluster_mode_ships_the_packed_environment(tmp_path):
    env_dir = tmp_path / "envs" / "abc123"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    spec = _spec(tmp_path, deploy_mode="cluster")
    log = io.BytesIO()
    python = str(env_dir / "bin" / "python")
    spark.prepare(spec, {"python": python, "env_dir": str(env_dir)}, str(tmp_path), log)
    argv = spark.argv(spec)
    archive = tmp_path / "envs" / "abc123.tar.gz"
    assert argv[1:5] == ["--master", "yarn", "--deploy-mode", "cluster"]
    assert f"{archive}#environment" in argv
    assert "spark.pyspark.python=./environment/bin/python" in argv
    assert "spark.executor.memory=2g" in argv
    assert argv[argv.index("--packages") + 1] == "org.example:lib:1.0"
    assert argv[argv.index("--repositories") + 1] == "https://repo.example/maven"
    assert argv[-2:] == ["job.py", "x"]
    with tarfile.open(archive) as packed:
        names = packed.getnames()
        packed.extractall(tmp_path / "unpacked")
    assert "bin/python" in names and "pyvenv.cfg" in names
    unpacked = tmp_path / "unpacked" / "bin" / "python"
    assert subprocess.run([str(unpacked), "-c", "print(1)"], capture_output=True).returncode == 0
    # cached by the environment hash: a second run packs nothing
    mtime = os.stat(archive).st_mtime_ns
    spark.prepare(_spec(tmp_path), {"python": python, "env_dir": str(env_dir)}, str(tmp_path), log)
    assert os.stat(archive).st_mtime_ns == mtime and b"reusing packed" in log.getvalue()


def test_yarn_client_mode_keeps_the_driver_on_the_head_node_python(tmp_path):
    env_dir = tmp_path / "envs" / "def456"
    (env_dir / "bin").mkdir(parents=True)
    spec = _spec(tmp_path, deploy_mode="client")
    python = str(env_dir / "bin" / "python")
    spark.prepare(spec, {"python": python, "env_dir": str(env_dir)}, str(tmp_path), io.BytesIO())
    argv = spark.argv(spec)
    assert argv[3:5] == ["--deploy-mode", "client"]
    assert f"spark.pyspark.driver.python={python}" in argv


def test_local_master_takes_no_deploy_mode_and_no_archive(tmp_path):
    spec = _spec(tmp_path, deploy_mode="cluster")
    spec["spark"]["configuration"]["spark.master"] = "local[2]"  # type: ignore[index]
    env_dir = tmp_path / "envs" / "0123abcd"
    spark.prepare(
        spec, {"python": "/env/bin/python", "env_dir": str(env_dir)}, str(tmp_path), io.BytesIO()
    )
    argv = spark.argv(spec)
    assert argv[1:3] == ["--master", "local[2]"] and "--deploy-mode" not in argv
    assert "--archives" not in argv and "spark.pyspark.python=/env/bin/python" in argv
    assert "spark.master=local[2]" not in " ".join(argv)


# -- Azure ML v1: Run.get_context() in a pyspark run on the head node -----------------------


def test_an_unchanged_v1_training_script_logs_through_spark_submit_on_the_head_node(
    hdi, project, write, cli
):
    """spark-submit's Python launcher keeps the run's PYTHONPATH (the run library first)
    and variables for the driver, so ``from azureml.core import Run`` works and what the
    script logs comes back with its outputs."""
    copy_example(project)
    write(
        project / "rc.yml",
        f"script: train.py\ntarget: {hdi}\nframework: pyspark\n"
        "spark:\n  configuration:\n    spark.ui.enabled: 'false'\n",
    )
    result = cli("run", "rc.yml", "--experiment", "v1-train", timeout=300)
    assert result.code == 0, result
    run = Workspace(project).ledger.list(limit=1)[0]
    assert run.kind == "hdinsight"
    assert f"run {run.id} experiment v1-train status Running" in result.out
    assert_logged_everything(cli, project, run.id)


def test_yarn_cluster_mode_ships_the_run_library_to_the_driver(tmp_path):
    """In cluster deploy mode the driver runs on a YARN node: the head node's PYTHONPATH
    does not reach it, so the run library goes with the job (and an unchanged v1 script
    still imports azureml.core there)."""
    spec = _spec(tmp_path, deploy_mode="cluster")
    spec["experiment"] = "exp"
    spec["spark"]["configuration"]["spark.submit.pyFiles"] = "mine.zip"  # type: ignore[index]
    library = supervisor._spark_library(spec, str(tmp_path / "wd"))
    assert library is not None
    env_dir = tmp_path / "envs" / "0a1b2c3d"
    (env_dir / "bin").mkdir(parents=True)
    python = str(env_dir / "bin" / "python")
    spark.prepare(spec, {"python": python, "env_dir": None}, str(tmp_path), io.BytesIO(), library)
    argv = spark.argv(spec)
    assert f"spark.submit.pyFiles={library},mine.zip" in argv
    assert "spark.yarn.appMasterEnv.AZUREML_RUN_ID=r1" in argv
    assert "spark.yarn.appMasterEnv.AZUREML_ARM_PROJECT_NAME=exp" in argv
    imported = subprocess.run(
        [sys.executable, "-c", "from azureml.core import Run; print(Run.get_context().id)"],
        env={"PYTHONPATH": library, "AZUREML_RUN_ID": "r1"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert imported.returncode == 0 and imported.stdout.startswith("OfflineRun_"), imported
    # client mode and TARGETS_AZUREML_REAL=1: nothing shipped
    client = _spec(tmp_path, deploy_mode="client")
    spark.prepare(client, {"python": python, "env_dir": None}, str(tmp_path), io.BytesIO(), library)
    assert not any("pyFiles" in a for a in spark.argv(client))
    real = _spec(tmp_path, deploy_mode="cluster")
    real["environment_variables"]["TARGETS_AZUREML_REAL"] = "1"  # type: ignore[index]
    assert supervisor._spark_library(real, str(tmp_path / "wd2")) is None
