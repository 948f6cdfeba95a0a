"""A user's view of the slurm kind: attach, run, resources, cancel, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

from targets_slurm import SlurmTarget

from targets.compute import RunStatus
from targets.runconfig.model import RunConfiguration
from targets.testing import SSHServer, collect_logs, make_request, wait_for_end


def attach(cli, slurm: SSHServer, *extra: str):
    return cli(
        "attach",
        "hpc",
        "--type",
        "slurm",
        "--address",
        slurm.host,
        "--ssh-port",
        str(slurm.port),
        "--username",
        slurm.user,
        "--ssh-key",
        str(slurm.key),
        "--accept-host-key",
        *extra,
    )


def test_a_new_user_runs_a_project_on_slurm(cli, project: Path, write, slurm: SSHServer) -> None:
    attached = attach(cli, slurm, "--partition", "debug")
    assert attached.code == 0, attached
    facts = cli("show", "hpc", "-o", "json").json()["facts"]  # type: ignore[index]
    assert re.match(r"slurm.* \d+\.\d+", facts["slurm"]) and "debug" in facts["partitions"]
    write(
        project / "train.py",
        "import os, pathlib\n"
        "print('job', os.environ['SLURM_JOB_ID'], 'partition', os.environ['SLURM_JOB_PARTITION'])\n"
        "pathlib.Path('outputs').mkdir()\n"
        "pathlib.Path('outputs/model.txt').write_text('trained')\n",
    )
    ran = cli("run", "train.py", "--target", "hpc", timeout=240)
    assert ran.code == 0, ran
    assert re.search(r"job \d+ partition debug", ran.out), ran
    listed = cli("runs", "list", "-o", "json").json()
    first = listed[0]  # type: ignore[index]
    run_id = first.get("run_id") or first["id"]
    assert (project / ".targets" / "runs" / run_id / "outputs" / "model.txt").read_text() == (
        "trained"
    )


def test_an_unknown_partition_is_refused_at_attach(cli, project: Path, slurm: SSHServer) -> None:
    refused = attach(cli, slurm, "--partition", "gpu-a100")
    assert refused.code == 2, refused
    assert "no partition 'gpu-a100'" in refused.err and "debug" in refused.err
    assert "hpc" not in cli("list").out


def test_a_malformed_account_is_refused_before_connecting(cli, project: Path) -> None:
    refused = cli(
        "attach", "hpc", "--type", "slurm", "--address", "login.example.edu", "--account", "a;b"
    )
    assert refused.code == 2, refused
    assert "not a Slurm name" in refused.err


def test_an_mpi_run_gets_its_tasks_from_srun_and_a_time_limit(
    slurm_target: SlurmTarget, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "main.py").write_text(
        "import os\n"
        "print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'],"
        " 'ntasks', os.environ['SLURM_NTASKS'], flush=True)\n"
    )
    config = RunConfiguration(script="main.py", communicator="OpenMpi")
    config.environment.python.user_managed_dependencies = True
    config.mpi.process_count_per_node = 2
    config.max_run_duration_seconds = 120
    handle = slurm_target.submit(make_request(source, config=config))
    state = wait_for_end(slurm_target, handle, 180)
    assert state.status is RunStatus.COMPLETED, state
    text = b"".join(collect_logs(slurm_target, handle).values()).decode()
    assert sorted(re.findall(r"rank (\d) of 2 ntasks 2", text)) == ["0", "1"], text
    job = handle.data["job_id"]
    _code, out, _err = slurm_target.connection().run(f"scontrol -o show job {job}")
    shown = out.decode()
    # 2 minutes of run plus the 30 minutes allowed for preparing the environment.
    assert "TimeLimit=00:32:00" in shown and "NumTasks=2" in shown, shown


def test_a_job_canceled_by_slurm_itself_shows_as_canceled(
    slurm_target: SlurmTarget, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "main.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(300)\n")
    handle = slurm_target.submit(make_request(source))
    deadline_state = wait_running(slurm_target, handle)
    assert deadline_state is RunStatus.RUNNING
    # An administrator's (or the user's own) scancel, outside targets.
    slurm_target.connection().run(f"scancel {handle.data['job_id']}")
    state = wait_for_end(slurm_target, handle, 90)
    assert state.status is RunStatus.CANCELED, state
    assert json.dumps(handle.to_json())  # the handle stays usable


def wait_running(target: SlurmTarget, handle) -> RunStatus:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = target.status(handle).status
        if status is not RunStatus.QUEUED and status is not RunStatus.PREPARING:
            return status
        time.sleep(0.2)
    return target.status(handle).status
