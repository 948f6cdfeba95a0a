"""Cloud data in v2 jobs: wasbs://, abfss://, blob https://, s3:// and gs:// inputs read
through fsspec with the user's credentials (against Azurite and moto's S3 server on
127.0.0.1), outputs uploaded after the run, data assets (`targets data`), and mltable
inputs. Real azureml-examples files (tests/data/jobs-real/data) run pointed at Azurite,
or stop before anything is queued naming what they need."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.azurite import ACCOUNT, Azurite, azurite_fixture  # noqa: F401 - fixture
from tests.conftest import REPO
from tests.moto_s3 import MotoS3, moto_s3_fixture  # noqa: F401 - fixture

REAL = REPO / "tests" / "data" / "jobs-real" / "data" / "azureml-examples" / "cli"
ENV = "name: sklearn-1.5\nversion: '1'\nimage: library/python:latest\n"
IRIS = b"sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,setosa\n"

# Our own stand-in for azureml-examples' src/main.py: prints what it was given and the
# data it read.
MAIN = """\
import argparse, pathlib
p = argparse.ArgumentParser()
p.add_argument("--iris-csv")
args, rest = p.parse_known_args()
text = pathlib.Path(args.iris_csv).read_text()
print("--iris-csv:", args.iris_csv)
print("rows:", len(text.splitlines()) - 1)
print("first:", text.splitlines()[1])
"""
HELLO_IRIS = MAIN


@pytest.fixture
def jobs(project: Path, cli, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real files in a workspace with their environment registered, their compute a
    local target, our scripts beside them, and no Docker (images are set aside)."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AWS_ENDPOINT_URL_S3", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    root = project / "cli"
    shutil.copytree(REAL, root)
    for folder in (
        root / "jobs" / "single-step" / "scikit-learn" / "iris",
        root / "jobs" / "basics",
    ):
        (folder / "src").mkdir(exist_ok=True)
    (root / "jobs" / "single-step" / "scikit-learn" / "iris" / "src" / "main.py").write_text(MAIN)
    (root / "jobs" / "basics" / "src" / "hello-iris.py").write_text(HELLO_IRIS)
    (project / "env.yml").write_text(ENV)
    assert cli("envs", "create", "--file", "env.yml").code == 0
    assert cli("attach", "cpu-cluster", "--type", "local").code == 0
    return root


@pytest.fixture
def blob(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> tuple[Azurite, str]:
    """Azurite's connection string in the environment (as a user sets it) and a fresh
    private container."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    container = f"c{uuid.uuid4().hex[:12]}"
    azurite.filesystem().mkdir(container)
    return azurite, container


def nothing_queued(project: Path) -> bool:
    return Workspace(project).ledger.count() == 0


IRIS_JOB = ("jobs", "single-step", "scikit-learn", "iris", "job.yml")


def test_real_wasbs_job_stops_before_anything_is_queued_naming_url_and_host(
    jobs: Path, cli, project: Path
):
    result = cli("run", str(jobs.joinpath(*IRIS_JOB)), timeout=120)
    assert result.code == 2, result
    assert "wasbs://datasets@azuremlexamples.blob.core.windows.net/iris.csv" in result.err
    assert "cannot reach azuremlexamples.blob.core.windows.net:443" in result.err
    assert "datastores add" in result.err  # what to do without a network path
    assert "Traceback" not in result.err
    assert nothing_queued(project)


def test_real_wasbs_job_runs_with_its_url_pointed_at_azurite(
    jobs: Path, cli, blob: tuple[Azurite, str]
):
    azurite, container = blob
    azurite.put(f"{container}/iris.csv", IRIS)
    url = f"wasbs://{container}@{ACCOUNT}.blob.core.windows.net/iris.csv"
    result = cli("run", str(jobs.joinpath(*IRIS_JOB)), "--set", f"inputs.iris_csv.path={url}")
    assert result.code == 0, result
    assert "--iris-csv: _inputs/iris_csv/iris.csv" in result.out
    assert "rows: 1" in result.out and "first: 5.1,3.5,1.4,0.2,setosa" in result.out


def test_wasbs_folder_input_follows_changes_between_runs(
    jobs: Path, cli, blob: tuple[Azurite, str]
):
    azurite, container = blob
    azurite.put(f"{container}/iris.csv", IRIS)
    azurite.put(f"{container}/old/notes.txt", b"gone soon")
    job = str(jobs / "jobs" / "basics" / "hello-iris-folder.yml")
    url = f"abfss://{container}@{ACCOUNT}.dfs.core.windows.net/"
    first = cli("run", job, "--set", f"inputs.data_dir.path={url}")
    assert first.code == 0, first
    assert "rows: 1" in first.out and "old" in first.out.split()
    fs = azurite.filesystem()
    fs.rm(f"{container}/old", recursive=True)
    azurite.put(f"{container}/iris.csv", IRIS + b"4.9,3.0,1.4,0.2,setosa\n")
    second = cli("run", job, "--set", f"inputs.data_dir.path={url}")
    assert second.code == 0, second
    assert "rows: 2" in second.out  # the changed blob was fetched again
    assert "old" not in second.out.split()  # the deleted one is gone from the copy


def test_blob_https_url_is_read_with_the_users_credentials(
    jobs: Path, cli, blob: tuple[Azurite, str]
):
    # The container is private: a plain HTTP download would be refused. The account key
    # in AZURE_STORAGE_CONNECTION_STRING reads it, as on Azure.
    azurite, container = blob
    azurite.put(f"{container}/data/iris.csv", IRIS)
    url = f"https://{ACCOUNT}.blob.core.windows.net/{container}/data/iris.csv"
    job = str(jobs / "jobs" / "basics" / "hello-iris-file.yml")
    result = cli("run", job, "--set", f"inputs.iris_csv.path={url}")
    assert result.code == 0, result
    assert "rows: 1" in result.out


def test_connection_string_of_another_account_is_refused(
    jobs: Path, cli, project: Path, blob: tuple[Azurite, str]
):
    job = str(jobs / "jobs" / "basics" / "hello-iris-file.yml")
    url = "wasbs://datasets@otheraccount.blob.core.windows.net/iris.csv"
    result = cli("run", job, "--set", f"inputs.iris_csv.path={url}")
    assert result.code == 2, result
    assert "AZURE_STORAGE_CONNECTION_STRING is for the storage account 'devstoreaccount1'" in (
        result.err
    )
    assert nothing_queued(project)


def test_missing_blob_is_refused_naming_it(
    jobs: Path, cli, project: Path, blob: tuple[Azurite, str]
):
    _, container = blob
    url = f"wasbs://{container}@{ACCOUNT}.blob.core.windows.net/nope.csv"
    result = cli("run", str(jobs.joinpath(*IRIS_JOB)), "--set", f"inputs.iris_csv.path={url}")
    assert result.code == 2, result
    assert f"cannot read {url}: it does not exist" in result.err
    assert nothing_queued(project)


def test_gs_input_without_a_network_path_is_refused(jobs: Path, cli, project: Path):
    result = cli(
        "run", str(jobs.joinpath(*IRIS_JOB)), "--set", "inputs.iris_csv.path=gs://bkt/iris.csv"
    )
    assert result.code == 2, result
    assert "cannot read gs://bkt/iris.csv: cannot reach storage.googleapis.com:443" in result.err
    assert nothing_queued(project)


S3_JOB = """\
environment: azureml:sklearn-1.5@latest
command: >-
  ls ${{inputs.data}} &&
  cp -r ${{inputs.data}}/. ${{outputs.copy}}/ &&
  echo written > ${{outputs.copy}}/marker.txt &&
  cp ${{inputs.data}}/iris.csv ${{outputs.one}}
inputs:
  data: {type: uri_folder, path: "s3://BUCKET/in", mode: download}
outputs:
  copy: {type: uri_folder, path: "s3://BUCKET/out/${{name}}/", mode: upload}
  one: {type: uri_file, path: "s3://BUCKET/single/iris.csv", mode: rw_mount}
"""


def test_s3_input_is_read_and_outputs_are_uploaded_after_the_run(
    jobs: Path, project: Path, cli, moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch
):
    for key, value in moto_s3.env().items():
        monkeypatch.setenv(key, value)
    bucket = f"b{uuid.uuid4().hex[:12]}"
    moto_s3.put(f"{bucket}/in/iris.csv", IRIS)
    moto_s3.put(f"{bucket}/in/sub/more.txt", b"more")
    (project / "job.yml").write_text(S3_JOB.replace("BUCKET", bucket))
    result = cli("run", "job.yml", "--name", "s3-run-1", timeout=180)
    assert result.code == 0, result
    assert "iris.csv" in result.out.split() and "sub" in result.out.split()
    fs = moto_s3.filesystem()
    assert fs.cat(f"{bucket}/out/s3-run-1/iris.csv") == IRIS
    assert fs.cat(f"{bucket}/out/s3-run-1/sub/more.txt") == b"more"
    assert fs.cat(f"{bucket}/out/s3-run-1/marker.txt") == b"written\n"
    assert fs.cat(f"{bucket}/single/iris.csv") == IRIS
    # The outputs are also in the run's folder, as for every run.
    assert (Workspace(project).run_dir("s3-run-1") / "outputs" / "copy" / "marker.txt").is_file()


def test_a_failed_run_uploads_nothing(
    jobs: Path, project: Path, cli, moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch
):
    for key, value in moto_s3.env().items():
        monkeypatch.setenv(key, value)
    bucket = f"b{uuid.uuid4().hex[:12]}"
    moto_s3.put(f"{bucket}/keep.txt", b"good")
    (project / "job.yml").write_text(
        "environment: azureml:sklearn-1.5@latest\n"
        "command: echo bad > ${{outputs.o}}/keep.txt && exit 3\n"
        f"outputs:\n  o: {{type: uri_folder, path: 's3://{bucket}/', mode: upload}}\n"
    )
    result = cli("run", "job.yml", timeout=180)
    assert result.code == 1, result
    assert moto_s3.filesystem().cat(f"{bucket}/keep.txt") == b"good"


def test_data_assets_register_list_show_and_resolve(
    jobs: Path, cli, project: Path, blob: tuple[Azurite, str]
):
    azurite, container = blob
    azurite.put(f"{container}/iris.csv", IRIS)
    url = f"wasbs://{container}@{ACCOUNT}.blob.core.windows.net/iris.csv"
    made = cli(
        "data", "create", "--name", "iris", "--version", "1", "--path", url, "--type", "uri_file"
    )
    assert made.code == 0, made
    again = cli(
        "data", "create", "--name", "iris", "--version", "1", "--path", url, "--type", "uri_file"
    )
    assert again.code == 0, again  # the same registration: nothing changes
    other = cli(
        "data",
        "create",
        "--name",
        "iris",
        "--version",
        "1",
        "--path",
        "/tmp",
        "--type",
        "uri_folder",
    )
    assert other.code == 2 and "registered already" in other.err, other
    listed = cli("data", "list", "-o", "json").json()
    assert [(a["name"], a["version"], a["type"], a["path"]) for a in listed] == [
        ("iris", "1", "uri_file", url)
    ]
    shown = cli("data", "show", "iris", "--label", "latest", "-o", "json").json()
    assert shown["path"] == url
    job = str(jobs.joinpath(*IRIS_JOB))
    for ref in ("azureml:iris:1", "azureml:iris@latest"):
        result = cli("run", job, "--set", f"inputs.iris_csv.path={ref}")
        assert result.code == 0, result
        assert "rows: 1" in result.out
    before = Workspace(project).ledger.count()
    unknown = cli("run", job, "--set", "inputs.iris_csv.path=azureml:iris:9")
    assert unknown.code == 2, unknown
    assert "the data asset 'iris:9' is not registered" in unknown.err
    assert "targets data create --name iris --version 9" in unknown.err
    assert Workspace(project).ledger.count() == before


def test_real_data_asset_files_register_and_run_or_stop_before_queueing(
    jobs: Path, cli, project: Path
):
    data = jobs / "assets" / "data"
    for name in ("local-file", "cloud-file-wasbs", "cloud-folder-wasbs", "cloud-file-https"):
        made = cli("data", "create", "--file", str(data / f"{name}.yml"))
        assert made.code == 0, made
    local = cli("data", "show", "local-file-example-titanic", "-o", "json").json()
    assert local["path"] == str((data / "sample-data" / "titanic.csv").resolve())
    job = str(jobs.joinpath(*IRIS_JOB))
    ok = cli("run", job, "--set", "inputs.iris_csv.path=azureml:local-file-example-titanic@latest")
    assert ok.code == 0, ok
    assert "rows: 891" in ok.out
    stop = cli("run", job, "--set", "inputs.iris_csv.path=azureml:cloud-file-wasbs-example@latest")
    assert stop.code == 2, stop
    assert "cannot reach account-name.blob.core.windows.net:443" in stop.err
    mismatch = cli(
        "run", job, "--set", "inputs.iris_csv.path=azureml:cloud-folder-wasbs-example@latest"
    )
    assert mismatch.code == 2 and "is a uri_folder, but the input is a uri_file" in mismatch.err
    assert Workspace(project).ledger.count() == 1


MLTABLE_JOB = """\
environment: azureml:sklearn-1.5@latest
command: python read.py --table ${{inputs.table}}
code: src
inputs:
  table: {type: mltable, path: PATH, mode: eval_download}
"""
# The run's Python has no PyYAML: read the MLTable's `- file:` entries by hand.
READ_TABLE = """\
import argparse, pathlib, re
p = argparse.ArgumentParser(); p.add_argument("--table")
folder = pathlib.Path(p.parse_args().table)
for value in re.findall(r"-\\s*file:\\s*(\\S+)", (folder / "MLTable").read_text()):
    path = folder / value
    print(value, "rows:", len(path.read_text().splitlines()) - 1)
"""


def test_real_local_mltable_is_read_through_its_paths(jobs: Path, cli, project: Path):
    (project / "src").mkdir()
    (project / "src" / "read.py").write_text(READ_TABLE)
    table = jobs / "assets" / "data" / "local-mltable"
    (project / "job.yml").write_text(MLTABLE_JOB.replace("PATH", str(table)))
    result = cli("run", "job.yml")
    assert result.code == 0, result
    assert "./titanic.csv rows: 891" in result.out
    # The same folder as a data asset (the real local-mltable.yml).
    made = cli("data", "create", "--file", str(jobs / "assets" / "data" / "local-mltable.yml"))
    assert made.code == 0, made
    ref = "azureml:local-mltable-example-titanic@latest"
    (project / "job.yml").write_text(MLTABLE_JOB.replace("PATH", ref))
    again = cli("run", "job.yml")
    assert again.code == 0 and "./titanic.csv rows: 891" in again.out, again


def test_mltable_paths_on_cloud_storage_are_brought_beside_it(
    jobs: Path, project: Path, cli, blob: tuple[Azurite, str]
):
    azurite, container = blob
    azurite.put(f"{container}/tables/iris.csv", IRIS)
    table = project / "table"
    table.mkdir()
    (table / "MLTable").write_text(
        "paths:\n"
        f"  - file: wasbs://{container}@{ACCOUNT}.blob.core.windows.net/tables/iris.csv\n"
        "transformations:\n  - read_delimited: {delimiter: ','}\n"
    )
    (project / "src").mkdir()
    (project / "src" / "read.py").write_text(READ_TABLE)
    (project / "job.yml").write_text(MLTABLE_JOB.replace("PATH", "./table"))
    result = cli("run", "job.yml")
    assert result.code == 0, result
    assert "./_paths/0/iris.csv rows: 1" in result.out
    assert "wasbs://" in (table / "MLTable").read_text()  # the user's file is untouched


def test_direct_input_passes_the_uri(jobs: Path, project: Path, cli, blob: tuple[Azurite, str]):
    azurite, container = blob
    azurite.put(f"{container}/iris.csv", IRIS)
    url = f"wasbs://{container}@{ACCOUNT}.blob.core.windows.net/iris.csv"
    (project / "job.yml").write_text(
        "environment: azureml:sklearn-1.5@latest\n"
        "command: echo got ${{inputs.d}}\n"
        f"inputs:\n  d: {{type: uri_file, path: '{url}', mode: direct}}\n"
    )
    result = cli("run", "job.yml", "--stream")
    assert result.code == 0, result
    assert result.out.strip().splitlines()[-1] == f"got {url}"
