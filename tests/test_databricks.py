"""The ``databricks`` kind, with the real ``databricks-sdk`` talking to a local emulator of
the Databricks REST API (``tests/databricks_emulator.py``): no workspace is reachable from
the test machine."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("databricks.sdk")

from targets.compute.base import RunStatus, TargetContext
from targets.compute.databricks import (
    DatabricksAPIError,
    DatabricksOptions,
    DatabricksTarget,
    parse_cluster_spec,
    run_library_files,
)
from targets.errors import AuthenticationError, UsageError
from targets.testing import (
    ComputeTargetContract,
    collect_logs,
    make_request,
    wait_for_end,
)
from tests.conftest import CLIResult
from tests.databricks_emulator import DatabricksEmulator
from tests.test_run_context import assert_logged_everything, copy_example, last_run, mlflow_run

TOKEN = "dapi-test-0123456789abcdef"
CLUSTER = "0123-456789-abcde"


@pytest.fixture
def emulator() -> Iterator[DatabricksEmulator]:
    with DatabricksEmulator(token=TOKEN) as dbx:
        yield dbx


def _target(
    dbx: DatabricksEmulator, tmp_path: Path, token: str = TOKEN, **options: object
) -> DatabricksTarget:
    values: dict[str, object] = {"host": dbx.host, "cluster_id": CLUSTER}
    values.update(options)
    context = TargetContext(
        state_dir=tmp_path / "state", secret=lambda name: token if name == "token" else None
    )
    return DatabricksTarget("dbx", DatabricksOptions.model_validate(values), context)


@pytest.fixture
def target(emulator: DatabricksEmulator, tmp_path: Path) -> Iterator[DatabricksTarget]:
    target = _target(emulator, tmp_path)
    with target:
        yield target


# -- options -------------------------------------------------------------------------------


def test_new_cluster_spec_is_parsed_into_fields() -> None:
    spec = parse_cluster_spec(
        "spark_version=15.4.x-scala2.12,node_type_id=Standard_DS3_v2,num_workers=2"
    )
    assert spec == {
        "spark_version": "15.4.x-scala2.12",
        "node_type_id": "Standard_DS3_v2",
        "num_workers": 2,
    }


def test_new_cluster_spec_missing_a_field_names_it() -> None:
    with pytest.raises(ValueError, match="num_workers"):
        parse_cluster_spec("spark_version=15.4.x-scala2.12,node_type_id=Standard_DS3_v2")


def test_options_take_at_most_one_cluster_and_an_https_host() -> None:
    # No cluster is Azure ML v1's attach: each run names one (environment.databricks.cluster).
    assert DatabricksOptions(host="https://adb-1.2.azuredatabricks.net").cluster_id is None
    with pytest.raises(ValueError, match="at most one"):
        DatabricksOptions(
            host="https://adb-1.2.azuredatabricks.net",
            cluster_id=CLUSTER,
            new_cluster="spark_version=15.4.x-scala2.12,node_type_id=n,num_workers=1",
        )
    with pytest.raises(ValueError, match="https://"):
        DatabricksOptions(host="http://adb-1.2.azuredatabricks.net", cluster_id=CLUSTER)


# -- attach through the CLI ----------------------------------------------------------------


def test_attach_keeps_the_token_in_the_keyring_only(
    emulator: DatabricksEmulator, project: Path, cli: Callable[..., CLIResult], isolated_home: Path
) -> None:
    got = cli(
        "attach", "mydbx", "--type", "databricks", "--host", emulator.host,
        "--token-stdin", "--cluster-id", CLUSTER, "--output", "json",
        input=TOKEN + "\n",
    )  # fmt: skip
    assert got.code == 0, got
    facts = got.json()
    assert TOKEN not in got.out + got.err
    assert "someone@example.com" in json.dumps(facts)
    for path in (project / ".targets").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    shown = cli("show", "mydbx")
    assert shown.code == 0, shown
    assert TOKEN not in shown.out


def test_attach_with_a_refused_token_attaches_nothing(
    emulator: DatabricksEmulator, project: Path, cli: Callable[..., CLIResult]
) -> None:
    got = cli(
        "attach", "mydbx", "--type", "databricks", "--host", emulator.host,
        "--token-stdin", "--cluster-id", CLUSTER, input="dapi-wrong\n",
    )  # fmt: skip
    assert got.code == 1, got
    assert "refused the token" in got.err
    assert "Traceback" not in got.err
    assert "mydbx" not in cli("list").out


def test_attach_with_an_unknown_cluster_names_it(
    emulator: DatabricksEmulator, project: Path, cli: Callable[..., CLIResult]
) -> None:
    got = cli(
        "attach", "mydbx", "--type", "databricks", "--host", emulator.host,
        "--token-stdin", "--cluster-id", "0000-nope", input=TOKEN + "\n",
    )  # fmt: skip
    assert got.code == 2, got
    assert "0000-nope" in got.err and "does not exist" in got.err
    assert "mydbx" not in cli("list").out


def test_attach_with_a_new_cluster_missing_a_field_sends_nothing(
    emulator: DatabricksEmulator, project: Path, cli: Callable[..., CLIResult]
) -> None:
    got = cli(
        "attach", "mydbx", "--type", "databricks", "--host", emulator.host, "--token-stdin",
        "--new-cluster", "spark_version=15.4.x-scala2.12,num_workers=2", input=TOKEN + "\n",
    )  # fmt: skip
    assert got.code == 2, got
    assert "node_type_id" in got.err
    assert emulator.calls == []


def test_targets_run_on_databricks_brings_outputs_back(
    emulator: DatabricksEmulator, project: Path, cli: Callable[..., CLIResult]
) -> None:
    attached = cli(
        "attach", "mydbx", "--type", "databricks", "--host", emulator.host,
        "--token-stdin", "--cluster-id", CLUSTER, input=TOKEN + "\n",
    )  # fmt: skip
    assert attached.code == 0, attached
    (project / "train.py").write_text(
        "import sys\nprint('hello', sys.argv[1:])\nopen('outputs/o.txt', 'w').write('x')\n"
    )
    (project / "run.yml").write_text(
        "script: train.py\narguments: [--lr, '0.1']\ntarget: mydbx\n"
        "environment:\n  python:\n    user_managed_dependencies: true\n"
    )
    got = cli("run", "run.yml")
    assert got.code == 0, got
    assert "hello ['--lr', '0.1']" in got.out
    assert "[databricks] TERMINATED SUCCESS" in got.out
    found = list((project / ".targets" / "runs").glob("*/outputs/o.txt"))
    assert [p.read_text() for p in found] == ["x"]


def _attach_cli(emulator: DatabricksEmulator, cli: Callable[..., CLIResult]) -> None:
    attached = cli(
        "attach", "mydbx", "--type", "databricks", "--host", emulator.host,
        "--token-stdin", "--cluster-id", CLUSTER, input=TOKEN + "\n",
    )  # fmt: skip
    assert attached.code == 0, attached


# -- Azure ML v1: Run.get_context() on the driver --------------------------------------------


def test_an_unchanged_v1_training_script_logs_on_databricks(
    emulator: DatabricksEmulator, project: Path, cli: Callable[..., CLIResult]
) -> None:
    """The run library goes with the snapshot, the wrapper puts it first on the path, and
    the run's MLflow store comes back with the outputs: what the script logs shows in
    ``targets runs show``."""
    _attach_cli(emulator, cli)
    copy_example(project)
    got = cli("run", "train.py", "--target", "mydbx", "--experiment", "v1-train")
    assert got.code == 0, got
    run = last_run(project)
    assert run.kind == "databricks"
    assert f"run {run.id} experiment v1-train status Running" in got.out
    assert_logged_everything(cli, project, run.id)


def test_a_failing_v1_script_still_brings_back_what_it_logged(
    emulator: DatabricksEmulator, project: Path, cli: Callable[..., CLIResult]
) -> None:
    _attach_cli(emulator, cli)
    (project / "fails.py").write_text(
        "from azureml.core import Run\n"
        "run = Run.get_context()\n"
        "run.log('seen', 1)\n"
        "raise RuntimeError('bad data')\n"
    )
    got = cli("run", "fails.py", "--target", "mydbx")
    assert got.code != 0, got
    assert "RuntimeError: bad data" in got.out
    run = last_run(project)
    shown = cli("runs", "show", run.id, "-o", "json").json()
    assert shown["status"] == "Failed" and shown["metrics"] == {"seen": 1.0}
    folder = project / ".targets" / "runs" / run.id
    assert "status: 4" in (mlflow_run(folder, run.id) / "meta.yaml").read_text()  # FAILED


def test_a_v1_script_that_never_ends_its_run_comes_back_finished(
    emulator: DatabricksEmulator, project: Path, cli: Callable[..., CLIResult]
) -> None:
    """The script runs inside the wrapper's process: its run is ended before the store
    is copied back, as at the end of a process."""
    _attach_cli(emulator, cli)
    (project / "t.py").write_text("from azureml.core import Run\nRun.get_context().log('n', 2)\n")
    assert cli("run", "t.py", "--target", "mydbx").code == 0
    run = last_run(project)
    folder = project / ".targets" / "runs" / run.id
    assert "status: 3" in (mlflow_run(folder, run.id) / "meta.yaml").read_text()  # FINISHED


def test_the_real_sdk_is_kept_on_databricks_when_the_run_asks(
    emulator: DatabricksEmulator, project: Path, cli: Callable[..., CLIResult]
) -> None:
    _attach_cli(emulator, cli)
    (project / "t.py").write_text("import azureml.core\n")
    (project / "rc.yml").write_text(
        "script: t.py\ntarget: mydbx\nenvironment_variables: {TARGETS_AZUREML_REAL: '1'}\n"
    )
    got = cli("run", "rc.yml")
    # No real SDK on this "cluster", and the run library was not put in its place.
    assert got.code != 0 and "No module named 'azureml'" in got.out, got
    (project / "rc.yml").write_text("script: t.py\ntarget: mydbx\n")
    assert cli("run", "rc.yml").code == 0


def test_refused_token_is_an_authentication_error(
    emulator: DatabricksEmulator, tmp_path: Path
) -> None:
    with (
        _target(emulator, tmp_path, token="dapi-wrong") as target,
        pytest.raises(AuthenticationError, match="Invalid access token"),
    ):
        target.probe()


def test_unknown_cluster_is_a_usage_error(emulator: DatabricksEmulator, tmp_path: Path) -> None:
    with (
        _target(emulator, tmp_path, cluster_id="0000-nope") as target,
        pytest.raises(UsageError, match="0000-nope"),
    ):
        target.probe()


# -- runs ----------------------------------------------------------------------------------


def test_script_with_arguments_completes_and_its_outputs_come_back(
    target: DatabricksTarget, emulator: DatabricksEmulator, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("VALUE = 'from a module'\n")
    (src / "train.py").write_text(
        "import os, sys\nfrom pkg import VALUE\n"
        "print('args', sys.argv[1:], VALUE)\n"
        "open('outputs/model.txt', 'w').write(' '.join(sys.argv[1:]))\n"
    )
    request = make_request(src, script="train.py", arguments=["--epochs", "3"])
    handle = target.submit(request)
    state = wait_for_end(target, handle)
    assert state.status is RunStatus.COMPLETED, state
    assert state.exit_code == 0
    logs = collect_logs(target, handle)
    assert b"args ['--epochs', '3'] from a module" in logs["driver.log"]
    assert logs["driver.log"].endswith(b"[databricks] TERMINATED SUCCESS\n")
    dest = tmp_path / "fetched"
    target.fetch_outputs(handle, dest)
    assert (dest / "outputs" / "model.txt").read_text() == "--epochs 3"
    body = next(b for m, p, b in emulator.calls if p.endswith("/jobs/runs/submit"))
    (task,) = body["tasks"]
    assert task["existing_cluster_id"] == CLUSTER
    assert task["spark_python_task"]["python_file"].endswith("/_targets_wrapper.py")


def test_failing_script_fails_with_its_exit_code_and_message(
    target: DatabricksTarget, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text("raise RuntimeError('the data is bad')\n")
    handle = target.submit(make_request(src))
    state = wait_for_end(target, handle)
    assert state.status is RunStatus.FAILED
    assert state.exit_code == 1
    assert "the data is bad" in (state.message or "")
    assert b"RuntimeError: the data is bad" in collect_logs(target, handle)["driver.log"]


def test_an_unchanged_snapshot_uploads_nothing_again(
    target: DatabricksTarget, emulator: DatabricksEmulator, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text("print('hi')\n")
    (src / "data.csv").write_text("a,b\n1,2\n")
    first = target.submit(make_request(src))
    # the two files, and the run library's (uploaded once, like snapshot files)
    uploaded = 2 + len(run_library_files())
    assert len(emulator.imports("/.targets/objects/")) == uploaded
    assert first.data["uploaded"] == uploaded
    wait_for_end(target, first)
    second = target.submit(make_request(src))
    assert len(emulator.imports("/.targets/objects/")) == uploaded
    assert second.data["uploaded"] == 0
    assert wait_for_end(target, second).status is RunStatus.COMPLETED


def test_environment_packages_become_run_libraries(
    target: DatabricksTarget, emulator: DatabricksEmulator, tmp_path: Path
) -> None:
    from targets.runconfig.model import CondaSpec, RunConfiguration, SparkPackage

    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text("print('ok')\n")
    config = RunConfiguration(script="main.py", framework="pyspark")
    config.environment.python.conda_dependencies = CondaSpec.model_validate(
        {"dependencies": ["python=3.11", {"pip": ["requests==2.32.3"]}]}
    )
    config.environment.spark.packages = [
        SparkPackage(group="com.databricks", artifact="spark-xml_2.12", version="0.18.0")
    ]
    handle = target.submit(make_request(src, config=config))
    body = next(b for m, p, b in emulator.calls if p.endswith("/jobs/runs/submit"))
    libraries = body["tasks"][0]["libraries"]
    assert {"pypi": {"package": "requests==2.32.3"}} in libraries
    assert {"maven": {"coordinates": "com.databricks:spark-xml_2.12:0.18.0"}} in libraries
    wait_for_end(target, handle)


def test_a_new_job_cluster_goes_into_the_run(emulator: DatabricksEmulator, tmp_path: Path) -> None:
    spec = "spark_version=15.4.x-scala2.12,node_type_id=Standard_DS3_v2,num_workers=2"
    with _target(emulator, tmp_path, cluster_id=None, new_cluster=spec) as target:
        src = tmp_path / "src"
        src.mkdir()
        (src / "main.py").write_text("print('on a job cluster')\n")
        handle = target.submit(make_request(src))
        assert wait_for_end(target, handle).status is RunStatus.COMPLETED
    body = next(b for m, p, b in emulator.calls if p.endswith("/jobs/runs/submit"))
    assert body["tasks"][0]["new_cluster"] == {
        "spark_version": "15.4.x-scala2.12",
        "node_type_id": "Standard_DS3_v2",
        "num_workers": 2,
    }


def test_a_docker_environment_is_refused_before_anything_is_uploaded(
    target: DatabricksTarget, emulator: DatabricksEmulator, tmp_path: Path
) -> None:
    from targets.runconfig.model import RunConfiguration

    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text("print('x')\n")
    config = RunConfiguration(script="main.py")
    config.environment.docker.enabled = True
    config.environment.docker.base_image = "python:3.11"
    with pytest.raises(UsageError, match="Docker"):
        target.submit(make_request(src, config=config))
    assert emulator.imports() == []


def test_api_errors_carry_the_databricks_message(
    target: DatabricksTarget, emulator: DatabricksEmulator
) -> None:
    from targets.compute.base import RunHandle

    handle = RunHandle("databricks", "dbx", "r1", {"databricks_run_id": 99999, "folder": "/x"})
    with pytest.raises(DatabricksAPIError, match="Run 99999 does not exist"):
        target.status(handle)


def test_cancel_a_running_run(target: DatabricksTarget, tmp_path: Path) -> None:
    import time

    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text(
        "import time\nopen('outputs/started', 'w').write('yes')\nprint('up', flush=True)\n"
        "time.sleep(300)\n"
    )
    handle = target.submit(make_request(src))
    while target.status(handle).status is not RunStatus.RUNNING:
        time.sleep(0.05)
    time.sleep(0.5)
    target.cancel(handle)
    state = wait_for_end(target, handle, 60)
    assert state.status is RunStatus.CANCELED
    dest = tmp_path / "fetched"
    target.fetch_outputs(handle, dest)
    assert (dest / "outputs" / "started").read_text() == "yes"


# -- the documented limits of the service (issue 13) ---------------------------------------


def test_an_output_file_over_the_10_mb_export_limit_comes_back_intact(
    target: DatabricksTarget, emulator: DatabricksEmulator, tmp_path: Path
) -> None:
    import hashlib
    import random

    from tests.databricks_emulator import MAX_WORKSPACE_CONTENT

    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text(
        "import os, random\nos.makedirs('outputs/model', exist_ok=True)\n"
        "data = random.Random(13).randbytes(12 * 1024 * 1024)\n"
        "open('outputs/model/weights.bin', 'wb').write(data)\n"
        "open('outputs/small.txt', 'w').write('small')\n"
    )
    handle = target.submit(make_request(src))
    assert wait_for_end(target, handle).status is RunStatus.COMPLETED
    dest = tmp_path / "fetched"
    target.fetch_outputs(handle, dest)
    expected = random.Random(13).randbytes(12 * 1024 * 1024)
    assert len(expected) * 4 // 3 > MAX_WORKSPACE_CONTENT  # one export could not hold it
    got = (dest / "outputs" / "model" / "weights.bin").read_bytes()
    assert len(got) == len(expected)
    assert hashlib.sha256(got).digest() == hashlib.sha256(expected).digest()
    assert (dest / "outputs" / "small.txt").read_text() == "small"
    assert sorted(p.name for p in dest.rglob("*.part")) == []
    assert not (dest / "parts").exists()  # the parts are put together, not copied
    exports = len([p for m, p, b in emulator.calls if p.endswith("/workspace/export")])
    target.fetch_outputs(handle, dest)  # idempotent: the large file is not read again
    again = len([p for m, p, b in emulator.calls if p.endswith("/workspace/export")])
    assert again == exports + 1  # the parts list only

    # A part that changed since the run wrote it is refused, and nothing is written.
    part = emulator.local(f"{handle.data['folder']}/parts/outputs/model/weights.bin/000001")
    part.write_bytes(part.read_bytes()[:-1] + b"?")
    (dest / "outputs" / "model" / "weights.bin").unlink()
    with pytest.raises(DatabricksAPIError, match="came back with 12582912 bytes"):
        target.fetch_outputs(handle, dest)
    assert sorted(p.name for p in (dest / "outputs" / "model").iterdir()) == []


def test_a_list_command_from_a_runconfig_runs_as_written(
    emulator: DatabricksEmulator, project: Path, cli: Callable[..., CLIResult]
) -> None:
    attached = cli(
        "attach", "mydbx", "--type", "databricks", "--host", emulator.host,
        "--token-stdin", "--cluster-id", CLUSTER, input=TOKEN + "\n",
    )  # fmt: skip
    assert attached.code == 0, attached
    (project / "run.yml").write_text(
        'command: ["python3", "-c", "import sys; print(sys.argv[1:])", "a b", "$HOME;x"]\n'
        "target: mydbx\n"
        "environment:\n  python:\n    user_managed_dependencies: true\n"
    )
    got = cli("run", "run.yml")
    assert got.code == 0, got
    assert "['a b', '$HOME;x']" in got.out.splitlines()


def test_a_run_survives_a_storm_of_429_and_5xx_answers(
    target: DatabricksTarget, emulator: DatabricksEmulator, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text(
        "print('through the storm')\nopen('outputs/o.txt', 'w').write('kept')\n"
    )
    # Upload and submit, then status, logs and collection each meet a busy workspace.
    emulator.answer_later([429, 500, 503, 504])
    handle = target.submit(make_request(src))
    emulator.answer_later([500, 429])
    assert wait_for_end(target, handle).status is RunStatus.COMPLETED
    emulator.answer_later([504])
    assert b"through the storm" in collect_logs(target, handle)["driver.log"]
    emulator.answer_later([503, 500], only="/workspace/")
    dest = tmp_path / "fetched"
    target.fetch_outputs(handle, dest)
    assert (dest / "outputs" / "o.txt").read_text() == "kept"
    assert len(emulator.answered_later) == 9
    assert {s for s, _m, _p in emulator.answered_later} == {429, 500, 503, 504}
    assert len([b for m, p, b in emulator.calls if p.endswith("/jobs/runs/submit")]) == 1


def test_truncated_driver_output_says_where_it_was_cut(
    target: DatabricksTarget, tmp_path: Path
) -> None:
    from tests.databricks_emulator import MAX_OUTPUT_LOGS

    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text(
        "import sys\nfor i in range(120_000):\n    print('line %06d ' % i + 'x' * 40)\n"
        "print('THE LAST LINE')\nsys.exit(3)\n"
    )
    handle = target.submit(make_request(src))
    state = wait_for_end(target, handle)
    assert state.status is RunStatus.FAILED and state.exit_code == 3
    log = collect_logs(target, handle)["driver.log"].decode()
    assert "line 000000 " in log
    assert "THE LAST LINE" not in log  # beyond the first 5 MB: Databricks dropped it
    note = log.index("Databricks returns only the first 5 MB")
    assert MAX_OUTPUT_LOGS - 100 < len(log[:note].encode()) < MAX_OUTPUT_LOGS + 200
    assert "[databricks] TERMINATED FAILED" in log[note:]


# -- the contract every kind passes --------------------------------------------------------


class TestDatabricksContract(ComputeTargetContract):
    run_timeout = 60

    @pytest.fixture
    def target(self, emulator: DatabricksEmulator, tmp_path: Path) -> Iterator[DatabricksTarget]:
        target = _target(emulator, tmp_path)
        with target:
            yield target


# -- attaching by Azure workspace name, as Azure ML does ------------------------------------


def test_attach_by_workspace_name_and_resource_group(
    emulator: DatabricksEmulator, project: Path, cli: Callable[..., CLIResult], tmp_path: Path
) -> None:
    import os

    from tests.azure_arm_emulator import ArmEmulator, fake_az

    arm_token = "arm-token-from-az-login"
    workspace_url = emulator.host.removeprefix("http://")
    found = {("sub-1", "rg", "ws"): workspace_url, ("sub-1", "rg", "ws2"): workspace_url}
    with ArmEmulator(arm_token, found) as arm:
        env = {
            "TARGETS_AZURE_RESOURCE_MANAGER": arm.url,
            "PATH": f"{fake_az(tmp_path / 'bin', arm_token)}:{os.environ['PATH']}",
        }
        attach = (
            "attach", "dbxws", "--type", "databricks", "--workspace-name", "ws",
            "--resource-group", "rg", "--subscription", "sub-1", "--token-stdin",
            "--cluster-id", CLUSTER,
        )  # fmt: skip
        attached = cli(*attach, input=TOKEN + "\n", env=env)
        assert attached.code == 0, attached
        shown = cli("show", "dbxws", "-o", "json").json()
        assert shown["facts"]["host"] == emulator.host  # found through Resource Manager
        (project / "t.py").write_text("print('found by name')\n")
        ran = cli("run", "t.py", "--target", "dbxws", env=env)
        assert ran.code == 0 and "found by name" in ran.out, ran
        lookups = len(arm.requests)

        missing = cli(
            "attach",
            "nows",
            "--type",
            "databricks",
            "--workspace-name",
            "nope",
            "--resource-group",
            "rg",
            "--subscription",
            "sub-1",
            "--token-stdin",
            "--cluster-id",
            CLUSTER,
            input=TOKEN + "\n",
            env=env,
        )
        assert missing.code == 2, missing
        assert "no Azure Databricks workspace 'nope'" in missing.err

        logged_out = {**env, "PATH": f"{fake_az(tmp_path / 'bin2', None)}:{os.environ['PATH']}"}
        refused = cli(
            "attach",
            "nologin",
            "--type",
            "databricks",
            "--workspace-name",
            "ws2",
            "--resource-group",
            "rg",
            "--subscription",
            "sub-1",
            "--token-stdin",
            "--cluster-id",
            CLUSTER,
            input=TOKEN + "\n",
            env=logged_out,
        )
        assert refused.code != 0, refused
        assert "az login" in refused.err
    assert lookups == 1  # the run reused the host found at attach
    assert {t["name"] for t in cli("list", "-o", "json").json()} == {"local", "dbxws"}


def test_workspace_name_needs_its_resource_group() -> None:
    with pytest.raises(ValueError, match="together"):
        DatabricksOptions(workspace_name="ws", cluster_id="c")
    with pytest.raises(ValueError, match="either --host"):
        DatabricksOptions(
            host="https://adb-1.azuredatabricks.net",
            workspace_name="ws",
            resource_group="rg",
            cluster_id="c",
        )
