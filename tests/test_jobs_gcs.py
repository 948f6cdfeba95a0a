"""gs:// inputs and outputs of v2 jobs against a Google Cloud Storage emulator on
127.0.0.1 (gcp-storage-emulator, tests/gcs_emulator.py): a job reads a gs:// uri_file and
a gs:// uri_folder, and its outputs are uploaded to gs:// after the run; a failed run
uploads nothing. The user points gcsfs at the emulator the documented way:
``STORAGE_EMULATOR_HOST``."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.gcs_emulator import GcsEmulator, gcs_emulator_fixture  # noqa: F401 - fixture

IRIS = b"sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,setosa\n"

# No Docker here: the image is set aside and the job runs in an isolated environment.
ENV = "environment:\n  image: python:3.11-slim\n"

JOB = (
    ENV
    + """\
command: >-
  echo "file: $(cat ${{inputs.iris}} | wc -l) lines" &&
  ls ${{inputs.data}} ${{inputs.data}}/sub &&
  cp -r ${{inputs.data}}/. ${{outputs.copy}}/ &&
  echo written > ${{outputs.copy}}/marker.txt &&
  cp ${{inputs.iris}} ${{outputs.one}}
inputs:
  iris: {type: uri_file, path: "gs://BUCKET/in/iris.csv"}
  data: {type: uri_folder, path: "gs://BUCKET/in/folder", mode: download}
outputs:
  copy: {type: uri_folder, path: "gs://BUCKET/out/${{name}}/", mode: upload}
  one: {type: uri_file, path: "gs://BUCKET/single/iris.csv", mode: rw_mount}
"""
)


@pytest.fixture
def bucket(gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """The emulator in the environment (as a user sets it), no Docker, and a fresh
    bucket with an input file and an input folder."""
    for key, value in gcs_emulator.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    name = f"b{uuid.uuid4().hex[:12]}"
    gcs_emulator.put(f"{name}/in/iris.csv", IRIS)
    gcs_emulator.put(f"{name}/in/folder/a.txt", b"alpha")
    gcs_emulator.put(f"{name}/in/folder/sub/b.txt", b"beta")
    return name


def test_gs_file_and_folder_inputs_are_read_and_outputs_uploaded(
    project: Path, cli, gcs_emulator: GcsEmulator, bucket: str
):
    (project / "job.yml").write_text(JOB.replace("BUCKET", bucket))
    result = cli("run", "job.yml", "--name", "gcs-run-1", "--stream", timeout=180)
    assert result.code == 0, result
    assert "file: 2 lines" in result.out
    listed = result.out.split()
    assert "a.txt" in listed and "sub" in listed and "b.txt" in listed
    fs = gcs_emulator.filesystem()
    assert fs.cat(f"{bucket}/out/gcs-run-1/a.txt") == b"alpha"
    assert fs.cat(f"{bucket}/out/gcs-run-1/sub/b.txt") == b"beta"
    assert fs.cat(f"{bucket}/out/gcs-run-1/marker.txt") == b"written\n"
    assert fs.cat(f"{bucket}/single/iris.csv") == IRIS
    # The outputs are also in the run's folder, as for every run.
    run_dir = Workspace(project).run_dir("gcs-run-1")
    assert (run_dir / "outputs" / "copy" / "marker.txt").read_text() == "written\n"


def test_a_changed_gs_input_is_read_again(
    project: Path, cli, gcs_emulator: GcsEmulator, bucket: str
):
    (project / "job.yml").write_text(
        ENV + f"command: cat ${{{{inputs.data}}}}/a.txt\n"
        f"inputs:\n  data: {{type: uri_folder, path: 'gs://{bucket}/in/folder'}}\n"
    )
    first = cli("run", "job.yml", "--stream", timeout=180)
    assert first.code == 0, first
    assert "alpha" in first.out
    gcs_emulator.put(f"{bucket}/in/folder/a.txt", b"gamma")
    second = cli("run", "job.yml", "--stream", timeout=180)
    assert second.code == 0, second
    assert "gamma" in second.out and "alpha" not in second.out


def test_a_missing_gs_object_is_refused_before_anything_is_queued(project: Path, cli, bucket: str):
    url = f"gs://{bucket}/in/nope.csv"
    (project / "job.yml").write_text(
        ENV + f"command: cat ${{{{inputs.x}}}}\ninputs:\n  x: {{type: uri_file, path: '{url}'}}\n"
    )
    result = cli("run", "job.yml", timeout=120)
    assert result.code == 2, result
    assert f"cannot read {url}" in result.err
    assert Workspace(project).ledger.count() == 0


def test_a_failed_run_uploads_nothing_to_gs(
    project: Path, cli, gcs_emulator: GcsEmulator, bucket: str
):
    gcs_emulator.put(f"{bucket}/keep/keep.txt", b"good")
    (project / "job.yml").write_text(
        ENV + "command: echo bad > ${{outputs.o}}/keep.txt && exit 3\n"
        f"outputs:\n  o: {{type: uri_folder, path: 'gs://{bucket}/keep/', mode: upload}}\n"
    )
    result = cli("run", "job.yml", "--stream", timeout=180)
    assert result.code == 1, result
    assert gcs_emulator.filesystem().cat(f"{bucket}/keep/keep.txt") == b"good"
