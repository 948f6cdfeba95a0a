"""The built-in node providers pass the provider contract suite plugin providers pass
(`targets.testing.NodeProviderContract`): docker with real containers on the test Docker
engine, ssh with two `vm` targets attached to the test sshd."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from targets.testing import NodeProviderContract
from tests.cluster_nodes import NodeImage, node_image_fixture  # noqa: F401 - fixture
from tests.dockerd import docker_engine_fixture  # noqa: F401 - fixture
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401 - fixtures


@pytest.mark.xdist_group("docker")
class TestDockerProviderContract(NodeProviderContract):
    provider_name = "docker"

    @pytest.fixture
    def provider_options(self, node_image: NodeImage) -> dict[str, Any]:
        return {"image": node_image.name}


class TestSSHProviderContract(NodeProviderContract):
    provider_name = "ssh"

    @pytest.fixture
    def workspace_dir(self, sshd: SSHServer, project: Path, cli) -> Path:
        for name in ("box0", "box1"):
            attached = cli(
                "attach", name, "--address", sshd.host, "--ssh-port", str(sshd.port),
                "--username", sshd.user, "--ssh-key", str(sshd.key), "--accept-host-key",
            )  # fmt: skip
            assert attached.code == 0, attached
        return project / ".targets"

    @pytest.fixture
    def provider_options(self, workspace_dir: Path) -> dict[str, Any]:
        return {"hosts": ["box0", "box1"]}
