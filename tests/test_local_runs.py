"""End-to-end runs on the local target through the real `targets` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from targets.workspace import Workspace
from tests.conftest import TARGETS, pid_alive, wait_until

NASTY_ARGS = [
    "--alpha",
    "0.5",
    "a b",
    'say "hi"',
    "it's",
    "x;rm -rf /tmp/nope",
    "$(whoami)",
    "`id`",
    "*",
    "",
    "--flag=$HOME",
]


def latest_run(project: Path) -> dict:
    ws = Workspace(project)
    records = ws.ledger.list(limit=1)
    assert records, "no run was recorded"
    return records[0].to_json()


def test_quick_form_passes_arguments_verbatim_and_collects_outputs(project, cli, write):
    write(
        project / "train.py",
        """
import json, sys, pathlib
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/args.json").write_text(json.dumps(sys.argv[1:]))
print("training with", len(sys.argv) - 1, "arguments")
print("to stderr", file=sys.stderr)
""",
    )
    result = cli("run", "train.py", "--target", "local", "--", *NASTY_ARGS)
    assert result.code == 0, result
    assert f"training with {len(NASTY_ARGS)} arguments" in result.out
    assert "to stderr" in result.out  # stderr is interleaved into the run's output
    run = latest_run(project)
    assert run["status"] == "Completed" and run["exit_code"] == 0
    folder = project / ".targets" / "runs" / run["id"]
    assert json.loads((folder / "outputs" / "args.json").read_text()) == NASTY_ARGS
    assert "training with" in (folder / "driver.log").read_text()
    assert not Path("/tmp/nope").exists()


def test_failed_run_exits_1_shows_the_code_and_still_collects_outputs(project, cli, write):
    write(
        project / "fail.py",
        """
import pathlib, sys
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/partial.txt").write_text("half done")
pathlib.Path("logs").mkdir(exist_ok=True)
pathlib.Path("logs/trace.log").write_text("step 1\\n")
print("about to fail")
sys.exit(3)
""",
    )
    result = cli("run", "fail.py")
    assert result.code == 1, result
    assert "Failed with exit code 3" in result.err
    run = latest_run(project)
    assert run["status"] == "Failed" and run["exit_code"] == 3
    folder = project / ".targets" / "runs" / run["id"]
    assert (folder / "outputs" / "partial.txt").read_text() == "half done"
    assert (folder / "logs" / "trace.log").read_text() == "step 1\n"


def test_output_streams_live_and_logs_folder_is_kept_live(project, write):
    marker = project.parent / "go-on"
    write(
        project / "slow.py",
        f"""
import pathlib, time
print("first line", flush=True)
pathlib.Path("logs").mkdir(exist_ok=True)
pathlib.Path("logs/progress.log").write_text("epoch 1\\n")
while not pathlib.Path({str(marker)!r}).exists():
    time.sleep(0.05)
print("second line")
""",
    )
    proc = subprocess.Popen(
        [*TARGETS, "run", "slow.py"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "first line"
        run = latest_run(project)
        assert run["status"] == "Running"  # the first line arrived while the run was going
        progress = project / ".targets" / "runs" / run["id"] / "logs" / "progress.log"
        wait_until(progress.exists, what="logs/progress.log in the run folder during the run")
        assert progress.read_text() == "epoch 1\n"
        marker.touch()
        rest, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "second line" in rest
    assert proc.returncode == 0


def test_detached_run_survives_its_client_and_logs_resume(project, cli, write):
    marker = project.parent / "release"
    write(
        project / "job.py",
        f"""
import pathlib, time
print("started", flush=True)
while not pathlib.Path({str(marker)!r}).exists():
    time.sleep(0.05)
print("finished")
""",
    )
    # A streaming client killed outright: the run must not notice.
    proc = subprocess.Popen([*TARGETS, "run", "job.py"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    proc.kill()
    proc.wait()
    run_id = latest_run(project)["id"]
    marker.touch()
    result = cli("runs", "logs", run_id, "--follow")
    assert result.code == 0, result
    assert result.out.splitlines() == ["started", "finished"]
    assert latest_run(project)["status"] == "Completed"


def test_detach_flag_returns_the_run_id_at_once(project, cli, write):
    write(project / "job.py", "import time; time.sleep(1); print('done')\n")
    result = cli("run", "job.py", "--detach")
    assert result.code == 0, result
    run_id = result.out.strip()
    assert latest_run(project)["id"] == run_id
    followed = cli("runs", "logs", run_id, "-f")
    assert followed.code == 0 and "done" in followed.out


def test_ctrl_c_stops_streaming_and_says_how_to_resume(project, write):
    write(
        project / "long.py",
        "import time\nprint('tick', flush=True)\ntime.sleep(3)\nprint('tock')\n",
    )
    proc = subprocess.Popen(
        [*TARGETS, "run", "long.py"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "tick"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    run_id = latest_run(project)["id"]
    assert proc.returncode == 130
    assert f"targets runs logs {run_id} --follow" in err
    # The run itself was not interrupted.
    from targets.runs import Run

    run = Run(Workspace(project), run_id)
    run.wait_for_completion()
    assert "tock" in (run.folder / "driver.log").read_text()


def test_cancel_ends_the_whole_process_tree(project, cli, write):
    pids = project.parent / "pids.txt"
    write(
        project / "tree.py",
        f"""
import os, subprocess, sys, time
child = subprocess.Popen(["sleep", "300"])
escaped = subprocess.Popen(["sleep", "301"], start_new_session=True)
open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}} {{escaped.pid}}")
print("waiting", flush=True)
time.sleep(300)
""",
    )
    started = cli("run", "tree.py", "--detach")
    assert started.code == 0, started
    run_id = started.out.strip()
    wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 3, what="pids")
    ids = [int(p) for p in pids.read_text().split()]
    assert all(pid_alive(p) for p in ids)
    result = cli("runs", "cancel", run_id)
    assert result.code == 0, result
    assert latest_run(project)["status"] == "Canceled"
    wait_until(
        lambda: not any(pid_alive(p) for p in ids),
        timeout=15,
        what="every process of the run to end",
    )


def test_max_run_duration_is_enforced(project, cli, write):
    write(project / "sleepy.py", "import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n")
    write(
        project / "rc.yml",
        "script: sleepy.py\nmax_run_duration_seconds: 1\n"
        "environment: {python: {user_managed_dependencies: true}}\n",
    )
    t0 = time.monotonic()
    result = cli("run", "rc.yml")
    assert result.code == 1, result
    assert time.monotonic() - t0 < 60
    run = latest_run(project)
    assert run["status"] == "Failed"
    assert "max_run_duration_seconds=1" in run["message"]


def test_run_uses_its_own_copy_while_the_user_keeps_editing(project, cli, write):
    marker = project.parent / "edited"
    write(project / "data.txt", "original\n")
    write(
        project / "reader.py",
        f"""
import pathlib, time
while not pathlib.Path({str(marker)!r}).exists():
    time.sleep(0.05)
print("data:", open("data.txt").read().strip())
""",
    )
    started = cli("run", "reader.py", "--detach")
    assert started.code == 0, started
    (project / "data.txt").write_text("edited after submit\n")
    marker.touch()
    followed = cli("runs", "logs", started.out.strip(), "--follow")
    assert "data: original" in followed.out


def test_runs_list_show_download_and_json(project, cli, write, tmp_path):
    write(
        project / "hello.py",
        "import pathlib\npathlib.Path('outputs').mkdir()\n"
        "pathlib.Path('outputs/model.txt').write_text('weights')\nprint('hi')\n",
    )
    assert cli("run", "hello.py", "-e", "exp1").code == 0
    listed = cli("runs", "list", "--output", "json")
    assert listed.code == 0, listed
    runs = listed.json()
    assert isinstance(runs, list) and runs[0]["experiment"] == "exp1"
    run_id = runs[0]["id"]
    assert run_id.startswith("exp1_")
    assert {"id", "status", "target", "created_at", "duration_seconds", "exit_code"} <= set(runs[0])
    table = cli("runs", "list")
    assert run_id in table.out and "Completed" in table.out
    shown = cli("runs", "show", run_id, "-o", "json").json()
    assert shown["status"] == "Completed"
    assert "outputs/model.txt" in shown["files"]
    assert shown["snapshot"]["files"] == 1
    dest = tmp_path / "dl"
    downloaded = cli("runs", "download", run_id, "--dest", str(dest))
    assert downloaded.code == 0, downloaded
    assert (dest / "outputs" / "model.txt").read_text() == "weights"
    assert (dest / "driver.log").read_text() == "hi\n"
    # A unique prefix of the id is enough.
    assert cli("runs", "show", run_id[:-3]).code == 0


def test_unknown_run_is_a_usage_error(project, cli):
    result = cli("runs", "show", "nope")
    assert result.code == 2
    assert "no run 'nope'" in result.err


def test_python_api_as_in_azure_ml_v1(project, write, capsys, tmp_path):
    write(
        project / "train.py",
        """
import argparse, pathlib
p = argparse.ArgumentParser(); p.add_argument("--alpha", type=float); a = p.parse_args()
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/model.txt").write_text(f"alpha={a.alpha}")
print("trained", a.alpha)
""",
    )
    from targets import (
        CondaDependencies,  # noqa: F401 - part of the documented import line
        Environment,  # noqa: F401
        Experiment,
        RunConfiguration,
        ScriptRunConfig,
        Workspace,
    )

    ws = Workspace.from_dir(".")
    rc = RunConfiguration()
    rc.environment.python.user_managed_dependencies = True
    run = Experiment(ws, "demo").submit(
        ScriptRunConfig(
            source_directory=".", script="train.py", arguments=["--alpha", "0.5"], run_config=rc
        )
    )
    run.wait_for_completion(show_output=True)
    assert run.get_status() == "Completed"
    target = tmp_path / "model.txt"
    run.download_file("outputs/model.txt", str(target))
    assert target.read_text() == "alpha=0.5"
    assert "trained 0.5" in capsys.readouterr().out
    assert ws.root == project


def test_python_api_failed_run_raises_with_the_output_tail(project, write):
    write(project / "bad.py", "print('something went wrong here')\nraise SystemExit(7)\n")
    from targets import Experiment, ScriptRunConfig, Workspace
    from targets.errors import RunFailedError

    run = Experiment(Workspace.from_dir("."), "demo").submit(
        ScriptRunConfig(source_directory=".", script="bad.py")
    )
    with pytest.raises(RunFailedError) as info:
        run.wait_for_completion()
    assert info.value.returncode == 7
    assert "something went wrong here" in str(info.value)


def test_command_runs_in_a_shell(project, cli):
    result = cli("run", "-c", "echo from-shell $((1+2))")
    assert result.code == 0, result
    assert "from-shell 3" in result.out


def test_environment_variables_reach_the_run(project, cli, write):
    write(
        project / "env.py",
        "import os\nprint(os.environ['GREETING'], "
        "os.environ['TARGETS_RUN_ID'] == os.environ['AZUREML_RUN_ID'])\n",
    )
    write(
        project / "rc.yml",
        "script: env.py\nenvironment_variables: {GREETING: bonjour}\n"
        "environment: {python: {user_managed_dependencies: true}}\n",
    )
    result = cli("run", "rc.yml")
    assert result.code == 0, result
    assert "bonjour True" in result.out


def test_user_managed_interpreter_path_is_used(project, cli, write):
    write(project / "which.py", "import sys\nprint(sys.executable)\n")
    write(
        project / "rc.yml",
        f"script: which.py\nenvironment:\n  python:\n"
        f"    user_managed_dependencies: true\n    interpreter_path: {sys.executable}\n",
    )
    result = cli("run", "rc.yml")
    assert result.code == 0, result
    assert result.out.strip() == sys.executable


def test_two_runs_at_once_both_complete(project, cli, write):
    write(project / "a.py", "import time; time.sleep(0.5); print('a done')\n")
    first = cli("run", "a.py", "-d")
    second = cli("run", "a.py", "-d")
    assert first.out.strip() != second.out.strip()
    for run_id in (first.out.strip(), second.out.strip()):
        assert cli("runs", "logs", run_id, "-f").out.strip() == "a done"


@pytest.mark.parametrize(
    ("setup", "args", "expected"),
    [
        (None, ["run", "missing.py"], "no such script"),
        (None, ["run", "missing.yml"], "missing.yml"),
        ({"bad.yml": "script: [unclosed\n"}, ["run", "bad.yml"], "bad.yml:"),
        (
            {"t.py": "print(1)\n"},
            ["run", "t.py", "--target", "nowhere"],
            "unknown target 'nowhere'; attached targets: local",
        ),
        (
            {"rc.yml": "script: ../outside.py\n"},
            ["run", "rc.yml"],
            "is not inside the source directory",
        ),
        ({"rc.yml": "scirpt: x.py\n"}, ["run", "rc.yml"], "did you mean 'script'"),
        ({"rc.yml": "script: t.py\nnode_count: many\n"}, ["run", "rc.yml"], "node_count"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(project, cli, write, setup, args, expected):
    (project.parent / "outside.py").write_text("print(1)\n")
    for name, text in (setup or {}).items():
        write(project / name, text)
    result = cli(*args)
    assert result.code == 2, result
    assert expected in result.err
    assert "Traceback" not in result.err
    assert not (project / ".targets" / "runs").exists()
    assert Workspace(project).ledger.count() == 0


def test_snapshot_over_the_file_limit_is_refused(project, cli, write):
    for i in range(5):
        write(project / f"f{i}.txt", "x" * (i + 1) * 100)
    write(project / "t.py", "print(1)\n")
    result = cli("run", "t.py", env={"TARGETS_SNAPSHOT_MAX_FILES": "3"})
    assert result.code == 2, result
    assert "f4.txt" in result.err  # the largest files are listed
    assert ".targetsignore" in result.err
    assert Workspace(project).ledger.count() == 0


def test_symlink_out_of_the_tree_is_refused(project, cli, write, tmp_path):
    secret = write(tmp_path / "elsewhere" / "secret.txt", "s3cret")
    os.symlink(secret, project / "link.txt")
    write(project / "t.py", "print(1)\n")
    result = cli("run", "t.py", env={"TARGETS_SNAPSHOT_SYMLINKS": "refuse"})
    assert result.code == 2, result
    assert "link.txt" in result.err
    assert Workspace(project).ledger.count() == 0


def test_version_and_help(cli):
    from targets import __version__

    version = cli("--version")
    assert version.code == 0 and __version__ in version.out
    helped = cli("--help")
    assert helped.code == 0
    for command in ("run", "runs", "attach", "kinds", "envs", "schema"):
        assert command in helped.out


def test_help_and_import_load_no_heavy_sdk():
    code = (
        "import sys, targets\n"
        "from targets.cli import cli\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit: pass\n"
        "heavy = [m for m in ('paramiko', 'fabric', 'docker', 'pyspark', 'databricks', 'azure',"
        " 'mlflow', 'keyring') if m in sys.modules]\n"
        "print('HEAVY:' + ','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "Commands" in out
    assert "HEAVY:\n" in out, f"imported by --help: {out.split('HEAVY:')[-1]}"


def test_large_uploads_show_progress_on_a_terminal(project, write):
    import pty

    for i in range(250):
        write(project / "data" / f"part{i:03}.txt", f"{i} " * 4000)
    write(project / "t.py", "print('with progress')\n")
    pid, fd = pty.fork()
    if pid == 0:  # the child: `targets run` with a terminal on stdin/stdout/stderr
        os.execv(sys.executable, [*TARGETS, "run", "t.py"])
    seen = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    text = seen.decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "sending files" in text
    assert "/251 files" in text  # files counted with the bytes
    assert "with progress" in text


def test_deleting_a_run_frees_its_folder_on_the_target_too(project, cli, write, isolated_home):
    marker = project.parent / "finish"
    write(
        project / "t.py",
        f"import os, time\nwhile not os.path.exists({str(marker)!r}):\n"
        "    time.sleep(0.05)\nprint('x')\n",
    )
    run_id = cli("run", "t.py", "-d").out.strip()
    refused = cli("runs", "delete", run_id)
    assert refused.code == 2 and "has not ended" in refused.err
    marker.touch()
    assert cli("runs", "logs", run_id, "-f").code == 0
    target_copy = isolated_home / ".targets" / "runs" / run_id
    assert target_copy.is_dir()
    assert cli("runs", "delete", run_id).code == 0
    assert not target_copy.exists()
    assert not (project / ".targets" / "runs" / run_id).exists()
    assert cli("runs", "show", run_id).code == 2
