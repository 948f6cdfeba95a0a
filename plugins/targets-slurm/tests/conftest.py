"""Fixtures of the Slurm plugin's tests: the test sshd of ``targets.testing`` (the login
node, user ``targets-test``) in front of the one-node Slurm that
``scripts/slurm-test-setup.sh`` of the targets repository runs on 127.0.0.1.

Only public names of targets are used (``targets.testing``): the plugin's tests run from
any folder, like those of a plugin published on its own.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from targets_slurm import SlurmOptions, SlurmTarget

from targets.compute import TargetContext
from targets.testing.ci_skips import (  # noqa: F401 - with CI set, a skip is a failure
    pytest_make_collect_report,
    pytest_runtest_makereport,
)
from targets.testing.fixtures import cli, isolated_home, project, write  # noqa: F401 - fixtures
from targets.testing.sshd import (  # noqa: F401 - fixtures
    SSHServer,
    skip_or_fail,
    sshd_fixture,
    sshd_server_fixture,
)


def slurm_unavailable() -> str | None:
    """Why the test Slurm is not usable here, or ``None``."""
    if shutil.which("sinfo") is None:
        return (
            "Slurm is not installed: run `sudo bash scripts/slurm-test-setup.sh` (Debian's "
            "slurm-wlm and munge, a one-node cluster on 127.0.0.1)"
        )
    proc = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=30
    )
    state = proc.stdout.strip().split("\n")[0] if proc.returncode == 0 else ""
    if not state.startswith(("idle", "mix", "alloc")):
        return (
            f"the test Slurm does not take jobs (sinfo: {(state or proc.stderr).strip()!r}): "
            "run `sudo bash scripts/slurm-test-setup.sh`"
        )
    return None


@pytest.fixture
def slurm(sshd: SSHServer) -> SSHServer:
    """The login node (the test sshd) of a working Slurm; skips, or fails under CI."""
    reason = slurm_unavailable()
    if reason:
        skip_or_fail(reason)
    return sshd


@pytest.fixture
def slurm_options(slurm: SSHServer) -> SlurmOptions:
    return SlurmOptions(
        address=slurm.host,
        ssh_port=slurm.port,
        username=slurm.user,
        ssh_key=str(slurm.key),
        partition="debug",
    )


@pytest.fixture
def slurm_target(slurm_options: SlurmOptions, tmp_path: Path) -> Iterator[SlurmTarget]:
    context = TargetContext(state_dir=tmp_path, accept_host_key=True)
    target = SlurmTarget("hpc", slurm_options, context)
    try:
        yield target
    finally:
        target.close()
