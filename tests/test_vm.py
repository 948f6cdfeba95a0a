"""The `vm` kind against a real OpenSSH server on 127.0.0.1, logging in as another user."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from targets.compute.base import TargetContext
from targets.compute.vm import VMOptions, VMTarget
from targets.testing import ComputeTargetContract, make_request, wait_for_end
from targets.workspace import Workspace
from tests.conftest import TARGETS, wait_until
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401


class TestVMContract(ComputeTargetContract):
    @pytest.fixture
    def target(self, sshd: SSHServer, tmp_path: Path) -> Iterator[VMTarget]:
        options = VMOptions(
            address=sshd.host, ssh_port=sshd.port, username=sshd.user, ssh_key=str(sshd.key)
        )
        with VMTarget(
            "vmtest", options, TargetContext(state_dir=tmp_path, accept_host_key=True)
        ) as target:
            yield target


def attach_args(sshd: SSHServer, name: str = "dsvm", *extra: str) -> list[str]:
    return [
        "attach",
        name,
        "--address",
        sshd.host,
        "--ssh-port",
        str(sshd.port),
        "--username",
        sshd.user,
        *extra,
    ]


@pytest.fixture
def dsvm(sshd: SSHServer, project: Path, cli) -> str:
    """A workspace with the test sshd attached as `dsvm` (key login)."""
    result = cli(*attach_args(sshd, "dsvm", "--ssh-key", str(sshd.key), "--accept-host-key"))
    assert result.code == 0, result
    return "dsvm"


def test_attach_records_what_the_machine_has(dsvm, cli, project):
    shown = cli("show", dsvm, "-o", "json").json()
    facts = shown["facts"]
    assert shown["kind"] == "vm"
    assert facts["os"].startswith("Debian")
    assert facts["python"] == "/usr/bin/python3" and facts["python_version"].startswith("3.")
    assert facts["cores"] >= 1 and facts["memory_bytes"] > 0 and facts["disk_free_bytes"] > 0
    assert "gpus" in facts and "conda" in facts and "docker" in facts
    table = cli("show", dsvm)
    assert "python version" in table.out
    listed = cli("list", "-o", "json").json()
    assert {t["name"] for t in listed} == {"local", "dsvm"}


def test_run_on_the_vm_with_arguments_and_variables_verbatim(dsvm, cli, write, project, sshd):
    nasty = ['"; rm -rf ~; echo "', "$(id)", "`id`", "it's", "a  b", "ünïcødé ✓", "*", ""]
    write(
        project / "show.py",
        """
import json, os, pathlib, sys
pathlib.Path("outputs").mkdir()
pathlib.Path("outputs/args.json").write_text(json.dumps(sys.argv[1:]))
print("user", os.environ.get("USER") or os.getuid(), "var", os.environ["MY_VAR"])
""",
    )
    write(
        project / "rc.yml",
        "script: show.py\ntarget: dsvm\nenvironment_variables:\n"
        "  MY_VAR: '$HOME; `id` \"q\"'\nenvironment: {python: {user_managed_dependencies: true}}\n",
    )
    result = cli("run", "rc.yml", "--", *nasty)
    assert result.code == 0, result
    assert 'var $HOME; `id` "q"' in result.out
    run = Workspace(project).ledger.list(limit=1)[0]
    assert run.kind == "vm"
    got = json.loads((project / ".targets" / "runs" / run.id / "outputs" / "args.json").read_text())
    assert got == nasty
    assert (sshd.home / ".targets").is_dir()  # nothing of the home was removed


def test_password_attach_keeps_the_password_out_of_every_file(
    sshd, project, cli, write, isolated_home
):
    result = cli(
        *attach_args(sshd, "pwbox", "--password-stdin", "--accept-host-key"),
        input=sshd.password + "\n",
    )
    assert result.code == 0, result
    write(project / "t.py", "print('over password')\n")
    ran = cli("run", "t.py", "--target", "pwbox")
    assert ran.code == 0 and "over password" in ran.out, ran
    shown = cli("show", "pwbox")
    assert "password (in keyring)" in shown.out
    secret = sshd.password.encode()
    for path in project.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), f"the password is in {path}"
    for text in (result.out, result.err, ran.out, ran.err, shown.out):
        assert sshd.password not in text
    # detach forgets it from the keyring too
    assert cli("detach", "pwbox").code == 0
    keyring_files = [p for p in isolated_home.rglob("*") if p.is_file()]
    assert all(secret not in p.read_bytes() for p in keyring_files)


def test_passphrase_protected_key(sshd, project, cli):
    args = attach_args(sshd, "enc", "--ssh-key", str(sshd.encrypted_key), "--accept-host-key")
    without = cli(*args)
    assert without.code != 0 and "encrypted" in without.err
    assert "enc" not in {t["name"] for t in cli("list", "-o", "json").json()}
    ok = cli(*args, "--ssh-key-passphrase-stdin", input=sshd.key_passphrase)
    assert ok.code == 0, ok
    assert cli("run", "-c", "echo key-ok", "--target", "enc").out.strip() == "key-ok"


@pytest.mark.parametrize(
    ("extra", "stdin", "expected"),
    [
        (["--password-stdin"], "wrong-password", "refused"),
        (["--ssh-port", "1"], None, "nothing is listening"),
    ],
)
def test_failed_attach_attaches_nothing(sshd, project, cli, extra, stdin, expected):
    args = attach_args(sshd, "bad", "--accept-host-key")
    if "--ssh-port" in extra:
        i = args.index("--ssh-port")
        args[i + 1] = extra[1]
        extra = []
    result = cli(*args, *extra, input=stdin)
    assert result.code != 0
    assert expected in result.err, result
    assert "Traceback" not in result.err
    assert not (project / ".targets" / "targets.yml").exists()
    if stdin:
        assert stdin not in result.err


def test_unknown_host_key_is_shown_and_must_be_accepted(sshd, project, cli):
    result = cli(*attach_args(sshd, "hk", "--ssh-key", str(sshd.key)))
    assert result.code != 0
    assert sshd.host_key_fingerprint() in result.err
    assert "--accept-host-key" in result.err
    assert not (project / ".targets" / "targets.yml").exists()
    assert not (project / ".targets" / "known_hosts").exists()


def test_changed_host_key_is_refused(sshd, project, cli, dsvm):
    sshd.restart_with_new_host_key()
    # A new connection meets the new key. (A shared connection made before the change
    # stays with the server it verified, as OpenSSH's ControlMaster does.)
    result = cli(
        "run", "-c", "echo should-not-run", "--target", dsvm, env={"TARGETS_SSH_PERSIST": "0"}
    )
    assert result.code != 0
    assert "man-in-the-middle" in result.err.lower() or "MITM" in result.err
    assert "ssh-keygen -f" in result.err
    assert "should-not-run" not in result.out


def test_ssh_config_alias(sshd, project, cli, isolated_home):
    ssh_dir = isolated_home / ".ssh"
    ssh_dir.mkdir(exist_ok=True)
    (ssh_dir / "config").write_text(
        f"Host lab-alias\n  HostName {sshd.host}\n  Port {sshd.port}\n  User {sshd.user}\n"
        f"  IdentityFile {sshd.key}\n"
    )
    result = cli("attach", "lab", "--type", "vm", "--address", "lab-alias", "--accept-host-key")
    assert result.code == 0, result
    assert cli("run", "-c", "whoami", "--target", "lab").out.strip() == sshd.user


def test_attach_through_a_jump_host(sshd, project, cli):
    """`--proxy-jump USER@HOST:PORT`: the target (named `localhost` here) is reached through
    the jump host (`127.0.0.1`), and both host keys are checked and recorded: the entry
    for 127.0.0.1 exists only because the jump host was connected to."""
    jump = f"{sshd.user}@127.0.0.1:{sshd.port}"
    args = attach_args(sshd, "inner", "--ssh-key", str(sshd.key), "--accept-host-key")
    args[args.index("--address") + 1] = "localhost"
    result = cli(*args, "--proxy-jump", jump)
    assert result.code == 0, result
    assert cli("show", "inner", "-o", "json").json()["options"]["proxy_jump"] == jump
    ran = cli("run", "-c", "whoami", "--target", "inner")
    assert ran.code == 0 and ran.out.strip() == sshd.user, ran
    known = (project / ".targets" / "known_hosts").read_text()
    assert f"[127.0.0.1]:{sshd.port}" in known and f"[localhost]:{sshd.port}" in known


def test_a_malformed_jump_host_is_refused_before_connecting(sshd, project, cli):
    args = attach_args(sshd, "inner", "--ssh-key", str(sshd.key), "--accept-host-key")
    result = cli(*args, "--proxy-jump", "me@host:notaport")
    assert result.code == 2, result
    assert "proxy_jump" in result.err or "--proxy-jump" in result.err, result.err
    assert "notaport" in result.err, result.err
    assert not (project / ".targets" / "targets.yml").exists()


def test_detached_run_survives_the_client_and_outputs_come_back_later(dsvm, project, write, cli):
    marker = f"/tmp/targets-release-{uuid.uuid4().hex}"
    write(
        project / "job.py",
        f"""
import os, pathlib, time
print("started", flush=True)
while not os.path.exists({marker!r}):
    time.sleep(0.05)
pathlib.Path("outputs").mkdir()
pathlib.Path("outputs/result.txt").write_text("made after the client left")
print("finished")
""",
    )
    proc = subprocess.Popen(
        [*TARGETS, "run", "job.py", "--target", dsvm], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    proc.kill()  # the client dies, and its SSH connection with it
    proc.wait()
    Path(marker).touch()
    try:
        run_id = Workspace(project).ledger.list(limit=1)[0].id
        followed = cli("runs", "logs", run_id, "--follow")
        assert followed.code == 0, followed
        assert followed.out.splitlines() == ["started", "finished"]
        folder = project / ".targets" / "runs" / run_id
        assert (folder / "outputs" / "result.txt").read_text() == "made after the client left"
        dest = project.parent / "dl"
        assert cli("runs", "download", run_id, "--dest", str(dest)).code == 0
        assert (dest / "outputs" / "result.txt").exists()
    finally:
        Path(marker).unlink(missing_ok=True)


def test_outputs_are_collected_by_the_next_command_when_nobody_watched(dsvm, project, write, cli):
    write(
        project / "quick.py",
        "import pathlib\npathlib.Path('outputs').mkdir()\n"
        "pathlib.Path('outputs/x.txt').write_text('x')\n",
    )
    run_id = cli("run", "quick.py", "--target", dsvm, "--detach").out.strip()
    wait_until(
        lambda: cli("runs", "list", "-o", "json").json()[0]["status"] == "Completed",
        what="the detached run to be seen completed",
    )
    shown = cli("runs", "show", run_id, "-o", "json").json()
    assert "outputs/x.txt" in shown["files"]


def test_cancel_stops_the_remote_process_tree(dsvm, project, write, cli, sshd):
    pids = f"/tmp/targets-pids-{uuid.uuid4().hex}"
    write(
        project / "tree.py",
        f"""
import os, subprocess, time
child = subprocess.Popen(["sleep", "300"])
open({pids!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
print("running", flush=True)
time.sleep(300)
""",
    )
    run_id = cli("run", "tree.py", "--target", dsvm, "--detach").out.strip()
    wait_until(
        lambda: os.path.exists(pids) and len(Path(pids).read_text().split()) == 2,
        what="the remote processes",
    )
    ids = [int(p) for p in Path(pids).read_text().split()]
    try:
        result = cli("runs", "cancel", run_id)
        assert result.code == 0, result
        assert "Canceled" in result.err
        wait_until(
            lambda: not any(Path(f"/proc/{p}").exists() for p in ids),
            timeout=20,
            what="the remote processes to end",
        )
        shown = cli("runs", "show", run_id, "-o", "json").json()
        assert shown["status"] == "Canceled" and "driver.log" in shown["files"]
    finally:
        Path(pids).unlink(missing_ok=True)


def test_a_run_whose_supervisor_vanished_is_failed_with_the_reason(sshd, tmp_path):
    options = VMOptions(
        address=sshd.host, ssh_port=sshd.port, username=sshd.user, ssh_key=str(sshd.key)
    )
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.py").write_text("import time\ntime.sleep(300)\n")
    with VMTarget("v", options, TargetContext(state_dir=tmp_path, accept_host_key=True)) as t:
        handle = t.submit(make_request(src))
        status_file = sshd.home / ".targets" / "runs" / handle.run_id / "status.json"
        wait_until(lambda: t.status(handle).status.value == "Running", what="the run to start")
        status = json.loads(status_file.read_text())
        os.killpg(os.getpgid(status["pid"]), signal.SIGKILL)  # the "machine" loses both
        os.kill(status["supervisor_pid"], signal.SIGKILL)
        state = wait_for_end(t, handle, 20)
        assert state.status.value == "Failed"
        assert "ended unexpectedly" in (state.message or "")


def test_two_clients_run_on_one_vm_at_once(dsvm, project, write):
    write(project / "a.py", "import time, sys\ntime.sleep(1)\nprint('done', sys.argv[1])\n")
    procs = [
        subprocess.Popen(
            [*TARGETS, "run", "a.py", "--target", dsvm, "--", str(i)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(o.strip() for o in outs) == ["done 0", "done 1", "done 2"]
    runs = Workspace(project).ledger.list()
    assert len({r.id for r in runs}) == 3 and {r.status for r in runs} == {"Completed"}


def test_system_managed_environment_is_built_on_the_vm_and_reused(
    dsvm, project, write, cli, shared_wheels
):
    write(
        project / "conda_dependencies.yml",
        "dependencies:\n- pip:\n  - --no-index\n"
        f"  - --find-links {shared_wheels}\n  - tinypkg==1.0\n",
    )
    write(
        project / "use.py",
        "import sys, tinypkg\nprint('remote tinypkg', tinypkg.VERSION, sys.prefix)\n",
    )
    write(
        project / "rc.yml",
        "script: use.py\ntarget: dsvm\nenvironment:\n  python:\n"
        "    conda_dependencies_file: conda_dependencies.yml\n",
    )
    first = cli("run", "rc.yml")
    assert first.code == 0, first
    assert "remote tinypkg 1.0" in first.out
    assert "# preparing environment" in first.out
    second = cli("run", "rc.yml")
    assert second.code == 0, second
    assert "# reusing environment" in second.out
    envs = cli("envs", "list", "--target", dsvm, "-o", "json").json()
    assert any(e["ready"] for e in envs)


def test_unchanged_project_uploads_nothing(dsvm, project, write, cli):
    for i in range(30):
        write(project / "data" / f"f{i}.bin", os.urandom(2000).hex())
    write(project / "t.py", f"print('{uuid.uuid4().hex}')\n")  # new to the shared store
    for expected in (31, 0):
        assert cli("run", "t.py", "--target", dsvm).code == 0
        handle = Workspace(project).ledger.list(limit=1)[0].handle
        assert handle is not None and handle["data"]["uploaded"] == expected
    (project / "data" / "f3.bin").write_text(uuid.uuid4().hex)
    assert cli("run", "t.py", "--target", dsvm).code == 0
    handle = Workspace(project).ledger.list(limit=1)[0].handle
    assert handle is not None and handle["data"]["uploaded"] == 1


@pytest.mark.parametrize("answer", ["y", "n"])
def test_unknown_host_key_is_asked_about_on_a_terminal(sshd, project, answer):
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execv(TARGETS[0], [*TARGETS, *attach_args(sshd, "asked", "--ssh-key", str(sshd.key))])
    seen = b""
    answered = False
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if not answered and b"Accept this key" in seen:
            os.write(fd, answer.encode() + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    text = seen.decode("utf-8", "replace")
    assert answered, text
    assert sshd.host_key_fingerprint() in text
    known = project / ".targets" / "known_hosts"
    if answer == "y":
        assert os.waitstatus_to_exitcode(status) == 0, text
        assert str(sshd.port) in known.read_text()
    else:
        assert os.waitstatus_to_exitcode(status) != 0
        assert not (project / ".targets" / "targets.yml").exists()


def test_password_without_a_keyring_says_what_to_do_and_connects_nowhere(sshd, project, cli):
    import time

    time.sleep(0.5)  # let sshd log the fixture's own readiness probe first
    before = sshd.log.count("Connection from")  # sshd logs every TCP connection (VERBOSE)
    result = cli(
        *attach_args(sshd, "nokeys", "--password-stdin", "--accept-host-key"),
        input=sshd.password,
        env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"},
    )
    assert result.code == 2, result
    assert "keyring" in result.err and "--use-agent" in result.err
    assert sshd.password not in result.err
    assert not (project / ".targets" / "targets.yml").exists()
    assert sshd.log.count("Connection from") == before  # the server was never contacted


def test_mlflow_store_of_a_vm_run_comes_back_and_is_merged(dsvm, project, write, cli):
    # The VM's python3 has no mlflow package: the script writes what mlflow.log_param and
    # log_metric write into the file store MLFLOW_TRACKING_URI names (same layout).
    write(
        project / "log.py",
        """
import os, pathlib, time
store = pathlib.Path(os.environ["MLFLOW_TRACKING_URI"].removeprefix("file://"))
assert os.environ["MLFLOW_EXPERIMENT_NAME"] == "vmexp"
exp = store / "123"
run = exp / "abc123"
(run / "params").mkdir(parents=True)
(run / "metrics").mkdir()
(run / "tags").mkdir()
(run / "artifacts").mkdir()
exp.joinpath("meta.yaml").write_text(
    f"artifact_location: file://{exp}\\nexperiment_id: '123'\\nname: vmexp\\n"
    "lifecycle_stage: active\\ncreation_time: 1\\nlast_update_time: 1\\n")
run.joinpath("meta.yaml").write_text(
    f"artifact_uri: file://{run}/artifacts\\nend_time: 2\\nentry_point_name: ''\\n"
    "experiment_id: '123'\\nlifecycle_stage: active\\nrun_id: abc123\\nrun_name: r\\n"
    "source_name: ''\\nsource_type: 4\\nsource_version: ''\\nstart_time: 1\\nstatus: 3\\n"
    "tags: []\\nuser_id: u\\n")
run.joinpath("params", "lr").write_text("0.01")
run.joinpath("metrics", "acc").write_text("1 0.5 0\\n2 0.75 1\\n")
print("logged on the vm")
""",
    )
    result = cli("run", "log.py", "--target", dsvm, "-e", "vmexp")
    assert result.code == 0, result
    run_id = Workspace(project).ledger.list(limit=1)[0].id
    shown = cli("runs", "show", run_id, "-o", "json").json()
    assert shown["params"] == {"lr": "0.01"} and shown["metrics"] == {"acc": 0.75}
    merged = list((project / ".targets" / "mlruns").glob("*/abc123/tags/targets.run_id"))
    assert len(merged) == 1 and merged[0].read_text() == run_id


def test_a_pyspark_run_on_a_plain_vm_is_refused_before_upload(dsvm, project, write, cli):
    write(project / "job.py", "print('never')\n")
    write(project / "rc.yml", "script: job.py\ntarget: dsvm\nframework: pyspark\n")
    result = cli("run", "rc.yml")
    assert result.code == 2, result
    assert "does not run Spark jobs" in result.err and "hdinsight" in result.err
