"""``type: spark`` jobs and pipeline steps (issue 16, part 5) with Spark's real
spark-submit and Java: on the local target, on an HDInsight-style head node (the test
sshd), on Databricks (the REST emulator), and Azure ML's own spark job files. Targets
without Spark refuse before anything is queued."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.conftest import REPO
from tests.databricks_emulator import DatabricksEmulator
from tests.spark_fixtures import head_node_spark_fixture, local_spark_fixture  # noqa: F401
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401

REAL = REPO / "tests" / "data" / "jobs-real" / "spark" / "azureml-examples" / "cli" / "jobs"
TOKEN = "dapi-spark-jobs-token"
SPARK_TIMEOUT = 600

# The entry file: reads a text input with Spark, counts words through a module shipped
# with py_files (imported on the executors too), drops the words of a file shipped with
# files, reads a file of an archive unpacked by archives (on an executor), and writes the
# counts (an output folder written by Spark) and what it saw.
COUNT = """
import argparse, json, os, pathlib, sys
from pyspark import SparkFiles
from pyspark.sql import SparkSession

parser = argparse.ArgumentParser()
parser.add_argument("--text")
parser.add_argument("--min", type=int)
parser.add_argument("--counts")
args = parser.parse_args()

spark = SparkSession.builder.getOrCreate()
sc = spark.sparkContext
stop = set(pathlib.Path(SparkFiles.get("stopwords.txt")).read_text().split())

def norm(word):
    import wordtools  # from py_files, on the executor
    return wordtools.normalise(word)

words = sc.textFile(args.text).flatMap(str.split).map(norm).filter(lambda w: w not in stop)
counts = words.map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b)
counts = counts.filter(lambda kv: kv[1] >= args.min)
spark.createDataFrame(counts, ["word", "n"]).coalesce(1).write.json(args.counts)

def from_archive(_):
    return pathlib.Path(SparkFiles.get("lk"), "inner", "note.txt").read_text()

archive = sc.parallelize([1], 1).map(from_archive).collect()[0]  # on an executor
import wordtools
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/seen.json").write_text(json.dumps({
    "argv": sys.argv[1:],
    "marker": spark.conf.get("spark.targets.marker", None),
    "partitions": spark.conf.get("spark.sql.shuffle.partitions"),
    "tool": wordtools.NAME,
    "text_exists": os.path.exists(args.text),
    "archive": archive,
}))
print("counted", counts.count(), "words", flush=True)
spark.stop()
"""

JOB = """$schema: https://azuremlschemas.azureedge.net/latest/sparkJob.schema.json
type: spark
code: ./src
entry:
  file: count.py
py_files:
  - wordtools.zip
files:
  - stopwords.txt
archives:
  - lookup.zip#lk
conf:
  spark.driver.cores: 1
  spark.driver.memory: 1g
  spark.executor.instances: 2
  spark.dynamicAllocation.enabled: True
  spark.dynamicAllocation.minExecutors: 1
  spark.dynamicAllocation.maxExecutors: 2
  spark.sql.shuffle.partitions: 3
  spark.targets.marker: seen
  spark.ui.enabled: false
inputs:
  text:
    type: uri_file
    path: ./data/words.txt
    mode: direct
  min_count: 2
outputs:
  counts:
    type: uri_folder
    mode: direct
args: >-
  --text ${{inputs.text}} --min ${{inputs.min_count}}
  --counts ${{outputs.counts}}
resources:
  instance_type: standard_e4s_v3
  runtime_version: "3.4"
"""

WORDS = "The fox and the dog\nthe FOX jumps, the dog sleeps\na fox\n"
EXPECTED = {"the": 4, "fox": 3, "dog": 2}  # "and"/"a" are stop words; the rest occur once


def _project(root: Path) -> Path:
    """The job above, with its code folder, a zipped module and its data."""
    src = root / "src"
    src.mkdir(parents=True)
    (src / "count.py").write_text(COUNT)
    (src / "stopwords.txt").write_text("and a\n")
    with zipfile.ZipFile(src / "wordtools.zip", "w") as archive:
        archive.writestr(
            "wordtools.py",
            "NAME = 'wordtools from py_files'\n\n\ndef normalise(word):\n"
            "    return word.strip(',.').lower()\n",
        )
    with zipfile.ZipFile(src / "lookup.zip", "w") as archive:
        archive.writestr("inner/note.txt", "unpacked from archives")
    (root / "data").mkdir()
    (root / "data" / "words.txt").write_text(WORDS)
    job = root / "spark-job.yml"
    job.write_text(JOB)
    return job


def _last_run(project: Path) -> Path:
    run = Workspace(project).ledger.list(limit=1)[0]
    return project / ".targets" / "runs" / run.id


def _spark_json(folder: Path) -> dict[str, int]:
    """The rows Spark wrote as JSON part files into ``folder``."""
    parts = sorted(folder.glob("part-*.json"))
    assert parts, f"no part files in {folder}: {sorted(p.name for p in folder.iterdir())}"
    rows = [json.loads(line) for part in parts for line in part.read_text().splitlines()]
    return {row["word"]: row["n"] for row in rows}


def _runs(project: Path) -> int:
    return Workspace(project).ledger.count()


def test_a_spark_job_file_runs_on_the_local_target(local_spark, project: Path, cli):
    job = _project(project)
    result = cli("run", str(job), timeout=SPARK_TIMEOUT)
    assert result.code == 0, result
    assert "counted 3 words" in (_last_run(project) / "driver.log").read_text()
    # resources mean nothing here: named in a warning, never dropped silently
    assert "resources.instance_type: 'standard_e4s_v3' ignored" in result.err
    assert "resources.runtime_version: '3.4' ignored" in result.err
    folder = _last_run(project)
    assert _spark_json(folder / "outputs" / "counts") == EXPECTED
    seen = json.loads((folder / "outputs" / "seen.json").read_text())
    assert seen["argv"] == [
        "--text",
        "_inputs/text/words.txt",
        "--min",
        "2",
        "--counts",
        "outputs/counts",
    ]
    assert seen["marker"] == "seen" and seen["partitions"] == "3"
    assert seen["tool"] == "wordtools from py_files" and seen["text_exists"]
    assert seen["archive"] == "unpacked from archives"
    assert "# spark-submit:" in (folder / "prepare.log").read_text()


def test_a_spark_job_through_job_create(local_spark, project: Path, cli):
    job = _project(project)
    result = cli("job", "create", "-f", str(job), "--stream", "--set", "inputs.min_count=3")
    assert result.code == 0, result
    assert _spark_json(_last_run(project) / "outputs" / "counts") == {"the": 4, "fox": 3}


JAVA = """
package demo;

import org.apache.spark.sql.SparkSession;

public class Count {
    public static void main(String[] args) {
        SparkSession spark = SparkSession.builder().getOrCreate();
        long n = spark.range(Long.parseLong(args[0])).count();
        System.out.println("jvm counted " + n + " rows as " + args[1]);
        System.out.flush();
        spark.stop();
    }
}
"""


def _jars(folder: Path) -> None:
    """``app.jar`` (manifest Main-Class demo.Count) and ``lib.jar`` (no Main-Class), both
    holding demo.Count, compiled against this machine's Spark jars."""
    import pyspark

    javac, jar = shutil.which("javac"), shutil.which("jar")
    if javac is None or jar is None:
        pytest.fail("a JDK (javac, jar) is needed: bash scripts/test-services.sh")
    spark_jars = Path(pyspark.__file__).parent / "jars"
    build = folder / "build"
    (build / "demo").mkdir(parents=True)
    (build / "demo" / "Count.java").write_text(JAVA)
    subprocess.run(
        [javac, "-cp", f"{spark_jars}/*", "-d", str(build), str(build / "demo" / "Count.java")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    subprocess.run(
        [jar, "cfe", str(folder / "app.jar"), "demo.Count", "-C", str(build), "demo"], check=True
    )
    subprocess.run([jar, "cf", str(folder / "lib.jar"), "-C", str(build), "demo"], check=True)
    shutil.rmtree(build)


@pytest.mark.parametrize("jar", ["app.jar", "lib.jar"])
def test_a_jvm_class_from_jars_runs(local_spark, project: Path, cli, write, jar: str):
    _jars(project / "jvm")
    write(
        project / "jvm-job.yml",
        "type: spark\ncode: ./jvm\nentry:\n  class_name: demo.Count\n"
        f"jars: [{jar}]\nargs: 7 ${{{{inputs.label}}}}\ninputs:\n  label: sevens\n"
        "conf:\n  spark.ui.enabled: 'false'\n",
    )
    result = cli("run", "jvm-job.yml", timeout=SPARK_TIMEOUT)
    assert result.code == 0, result
    assert "jvm counted 7 rows as sevens" in result.out
    assert "jvm counted 7 rows" in (_last_run(project) / "driver.log").read_text()


PIPELINE = """type: pipeline
jobs:
  make:
    type: command
    command: >-
      mkdir -p ${{outputs.text}} &&
      printf 'The fox and the dog\\nthe FOX jumps, the dog sleeps\\na fox\\n'
      > ${{outputs.text}}/words.txt
    environment:
      image: library/python:latest
    outputs:
      text:
  count:
    type: spark
    code: ./src
    entry:
      file: count.py
    py_files: [wordtools.zip]
    files: [stopwords.txt]
    archives: [lookup.zip#lk]
    conf:
      spark.ui.enabled: false
    inputs:
      text: ${{parent.jobs.make.outputs.text}}
    outputs:
      counts:
        type: uri_folder
    args: --text ${{inputs.text}} --min 2 --counts ${{outputs.counts}}
  report:
    type: command
    command: cat ${{inputs.counts}}/part-*.json
    environment:
      image: library/python:latest
    inputs:
      counts: ${{parent.jobs.count.outputs.counts}}
"""


def test_a_spark_step_between_two_command_steps(
    local_spark, project: Path, cli, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # images set aside
    _project(project)
    (project / "pipeline.yml").write_text(PIPELINE)
    result = cli("run", "pipeline.yml", timeout=SPARK_TIMEOUT)
    assert result.code == 0, result
    for step in ("make", "count", "report"):
        assert f"step {step}: Completed" in result.out
    # the last step printed the part files Spark wrote in the middle step
    printed = [
        json.loads(line.removeprefix("[report] "))
        for line in result.out.splitlines()
        if line.startswith("[report] {")
    ]
    assert {row["word"]: row["n"] for row in printed} == EXPECTED


def test_a_spark_job_on_an_hdinsight_head_node(
    head_node_spark, sshd: SSHServer, project: Path, cli
):
    job = _project(project)
    attached = cli(
        "attach",
        "hdi",
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
        "--spark-master",
        "local[2]",
    )
    assert attached.code == 0, attached
    result = cli("run", str(job), "--set", "compute=azureml:hdi", timeout=SPARK_TIMEOUT)
    assert result.code == 0, result
    run = Workspace(project).ledger.list(limit=1)[0]
    assert run.kind == "hdinsight"
    assert _spark_json(_last_run(project) / "outputs" / "counts") == EXPECTED


@pytest.fixture
def dbx(project: Path, cli):
    with DatabricksEmulator(token=TOKEN) as emulator:
        attached = cli(
            "attach",
            "dbx",
            "--type",
            "databricks",
            "--host",
            emulator.host,
            "--token-stdin",
            "--cluster-id",
            next(iter(emulator.clusters)),
            input=TOKEN + "\n",
        )
        assert attached.code == 0, attached
        yield emulator


DBX_JOB = """type: spark
code: ./src
entry:
  file: wrangle.py
conf:
  spark.executor.memory: 2g
inputs:
  text:
    type: uri_file
    path: ./data/words.txt
outputs:
  counts:
args: --text ${{inputs.text}} --counts ${{outputs.counts}}
compute: azureml:dbx
"""

WRANGLE = """
import argparse
from pyspark.sql import SparkSession

parser = argparse.ArgumentParser()
parser.add_argument("--text")
parser.add_argument("--counts")
args = parser.parse_args()
spark = SparkSession.builder.getOrCreate()
words = spark.sparkContext.textFile(args.text).flatMap(str.split).map(str.lower)
counts = words.map(lambda w: (w.strip(",."), 1)).reduceByKey(lambda a, b: a + b)
spark.createDataFrame(counts, ["word", "n"]).coalesce(1).write.json(args.counts)
print("wrangled on the cluster", flush=True)
"""


def test_a_spark_job_on_databricks(local_spark, dbx, project: Path, cli, write):
    write(project / "src" / "wrangle.py", WRANGLE)
    write(project / "data" / "words.txt", WORDS)
    write(project / "dbx-job.yml", DBX_JOB)
    result = cli("run", "dbx-job.yml", timeout=SPARK_TIMEOUT)
    assert result.code == 0, result
    assert "wrangled on the cluster" in result.out
    # The cluster's own Spark configuration applies: the job's conf is named, not applied.
    assert "conf (spark.executor.memory) not applied" in result.err
    counts = _spark_json(_last_run(project) / "outputs" / "counts")
    assert counts["the"] == 4 and counts["fox"] == 3


def test_databricks_refuses_what_it_cannot_express(dbx, project: Path, cli, write):
    write(project / "jvm" / "app.jar", "")
    write(
        project / "jvm-job.yml",
        "type: spark\ncode: ./jvm\nentry:\n  class_name: demo.Count\njars: [app.jar]\n"
        "compute: azureml:dbx\n",
    )
    result = cli("run", "jvm-job.yml")
    assert result.code == 2, result
    assert "runs the JVM class 'demo.Count'" in result.err
    assert "runs Python entry files only" in result.err
    job = _project(project)
    result = cli("run", str(job), "--set", "compute=azureml:dbx")
    assert result.code == 2, result
    assert "ships py_files, files, archives with spark-submit" in result.err
    assert _runs(project) == 0


def test_a_target_without_spark_refuses_before_queueing(sshd: SSHServer, project: Path, cli):
    job = _project(project)
    attached = cli(
        "attach",
        "vm",
        "--type",
        "vm",
        "--address",
        sshd.host,
        "--ssh-port",
        str(sshd.port),
        "--username",
        sshd.user,
        "--ssh-key",
        str(sshd.key),
        "--accept-host-key",
    )
    assert attached.code == 0, attached
    result = cli("run", str(job), "--set", "compute=azureml:vm")
    assert result.code == 2, result
    assert "target 'vm' (vm) does not run Spark" in result.err
    assert "databricks, hdinsight, local" in result.err
    assert _runs(project) == 0
    assert not list((project / ".targets" / "runs").glob("*"))


# -- Azure ML's own spark job files (tests/data/jobs-real/spark/SOURCES.md) -----------------

STANDALONE = [
    "serverless-spark-standalone-user-identity.yml",
    "serverless-spark-standalone-default-identity.yml",
    "attached-spark-standalone-managed-identity.yml",
]


@pytest.fixture
def real(project: Path) -> Path:
    root = project / "spark"
    shutil.copytree(REAL / "spark", root)
    return root


@pytest.mark.parametrize("name", STANDALONE[:2])
def test_real_spark_job_files_need_their_datastore(real: Path, project: Path, cli, name: str):
    result = cli("run", str(real / name))
    assert result.code == 2, result
    assert "the datastore 'workspaceblobstore' is not registered" in result.err
    assert "targets datastores add workspaceblobstore" in result.err
    assert _runs(project) == 0


def test_real_spark_job_file_runs_with_a_local_datastore(local_spark, real: Path, project, cli):
    """serverless-spark-standalone-user-identity.yml unchanged: its azureml://datastores
    paths are read from and written to a registered folder."""
    added = cli("datastores", "add", "workspaceblobstore", "--path", str(real))
    assert added.code == 0, added
    result = cli(
        "job", "create", "-f", str(real / STANDALONE[0]), "--stream", timeout=SPARK_TIMEOUT
    )
    assert result.code == 0, result
    assert "wrangled 4 passengers" in (_last_run(project) / "driver.log").read_text()
    assert "identity: accepted but not used" in result.err
    for folder in (_last_run(project) / "outputs" / "wrangled_data", real / "data" / "wrangled"):
        (part,) = folder.glob("part-*.csv")
        lines = part.read_text().splitlines()
        assert lines[0] == "PassengerId,Survived,Pclass,Sex,Age,Fare"
        assert len(lines) == 5


@pytest.mark.parametrize(
    "name",
    ["attached-spark-standalone-managed-identity.yml", "attached-spark-pipeline-user-identity.yml"],
)
def test_real_attached_spark_files_name_their_pool(real: Path, project: Path, cli, name: str):
    """The attached-pool files name a Synapse pool placeholder: refused before anything
    is queued, saying it is a placeholder and how to give a target instead."""
    added = cli("datastores", "add", "workspaceblobstore", "--path", str(real))
    assert added.code == 0, added
    result = cli("run", str(real / name))
    assert result.code == 2, result
    assert "compute '<ATTACHED_SPARK_POOL_NAME>' is a placeholder" in result.err
    assert "--target TARGET, or --set compute=TARGET" in result.err
    assert _runs(project) == 0


def test_real_spark_pipeline_with_a_spark_component_runs(local_spark, real: Path, project, cli):
    """serverless-spark-pipeline-default-identity.yml unchanged: its step uses
    spark-job-component.yml (conf with dynamic allocation, typed direct ports)."""
    result = cli("run", str(real / "serverless-spark-pipeline-default-identity.yml"))
    assert result.code == 2, result
    assert "the datastore 'workspaceblobstore' is not registered" in result.err
    added = cli("datastores", "add", "workspaceblobstore", "--path", str(real))
    assert added.code == 0, added
    result = cli(
        "run", str(real / "serverless-spark-pipeline-default-identity.yml"), timeout=SPARK_TIMEOUT
    )
    assert result.code == 0, result
    assert "[spark_job] wrangled 4 passengers" in result.out
    assert "jobs.spark_job.resources.instance_type: 'standard_e8s_v3' ignored" in result.err
    (part,) = (real / "data" / "wrangled").glob("part-*.csv")
    assert part.read_text().splitlines()[0] == "PassengerId,Survived,Pclass,Sex,Age,Fare"


# -- reading (no Spark needed) ---------------------------------------------------------------


def test_a_spark_job_is_read_with_its_conf_as_strings(tmp_path: Path):
    from targets.jobs.model import SparkJob
    from targets.jobs.reader import load_job

    job = load_job(_project(tmp_path)).job
    assert isinstance(job, SparkJob)
    assert job.entry.file == "count.py" and job.py_files == ["wordtools.zip"]
    assert job.conf["spark.dynamicAllocation.enabled"] == "true"
    assert job.conf["spark.sql.shuffle.partitions"] == "3"
    assert job.conf["spark.ui.enabled"] == "false"
    assert job.resources is not None and job.resources.runtime_version == "3.4"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("entry:\n  file: count.py\n", "entry:\n  file: count.py\n  class_name: a.B\n"),
            "an entry needs exactly one of 'file' or 'class_name'",
        ),
        (("file: count.py", "file: missing.py"), "entry file 'missing.py' not found"),
        (("  - wordtools.zip", "  - nowhere.zip"), "py_files entry 'nowhere.zip' not found"),
        (
            ("--min ${{inputs.min_count}}", "--min ${{inputs.minimum}}"),
            "${{inputs.minimum}} names no input of this job",
        ),
        (("conf:", "confs:"), "unknown key 'confs'"),
        (("code: ./src\n", ""), "a spark job needs code"),
    ],
)
def test_a_bad_spark_job_is_refused_naming_the_key(
    project: Path, cli, change: tuple[str, str], message: str
):
    job = _project(project)
    job.write_text(job.read_text().replace(*change))
    for command in (("job", "validate", "-f", str(job)), ("run", str(job))):
        result = cli(*command)
        assert result.code == 2, result
        assert message in result.err
    assert _runs(project) == 0


def test_a_spark_job_validates(project: Path, cli):
    result = cli("job", "validate", "-f", str(_project(project)))
    assert result.code == 0, result
