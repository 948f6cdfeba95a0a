"""The cluster tests' node image, for tests that start docker-provider nodes.

``scripts/docker-test-setup.sh`` (run by ``scripts/test-services.sh``, so by ``make pytest``)
builds ``targets-test-node:bookworm`` FROM the base image ``targets-test-python:bookworm``:
openssh-server, openmpi-bin, procps and PyTorch 2.13.0 (CPU) in the system python3 3.11.
This module only checks that the engine and the image are there; it builds nothing.

Use the fixture from another test module by importing it (conftest.py does not load this
module), together with the engine fixture it depends on::

    from tests.cluster_nodes import NodeImage, node_image_fixture  # noqa: F401 - fixture
    from tests.dockerd import docker_engine_fixture  # noqa: F401 - fixture

    def test_something(node_image: NodeImage) -> None:
        provider = DockerProvider(..., DockerProviderOptions(image=node_image.name), ...)

- ``node_image`` (session): a :class:`NodeImage`; ``.name`` is the image's name and
  ``.engine`` the :class:`tests.dockerd.DockerEngine`.
- :func:`remove_cluster_containers` removes every container of a cluster (by its
  ``targets.cluster`` label): call it in a fixture's teardown so that no node outlives a
  test, even a failed one.

When the engine or the node image is missing, the fixture skips the test with the reason,
or fails it when the environment variable ``CI`` is set (CI must not silently skip).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.dockerd import SETUP_HINT, DockerEngine, skip_or_fail

__all__ = ["NODE_IMAGE", "NodeImage", "node_image_fixture", "remove_cluster_containers"]

NODE_IMAGE = "targets-test-node:bookworm"


@dataclass(frozen=True, slots=True)
class NodeImage:
    """The node image in the machine's Docker engine."""

    name: str
    engine: DockerEngine


_CHECKED: NodeImage | None = None


@pytest.fixture(scope="session", name="node_image")
def node_image_fixture(docker_engine: DockerEngine) -> NodeImage:
    """The node image (sshd, OpenMPI, CPU PyTorch), checked once per process."""
    global _CHECKED
    if _CHECKED is None:
        found = docker_engine.run("image", "inspect", NODE_IMAGE, check=False, timeout=30)
        if found.returncode != 0:
            skip_or_fail(f"the cluster node image {NODE_IMAGE} is missing: {SETUP_HINT}")
        _CHECKED = NodeImage(NODE_IMAGE, docker_engine)
    return _CHECKED


def remove_cluster_containers(engine: DockerEngine, cluster: str) -> None:
    """``docker rm -f`` every container labelled ``targets.cluster=<cluster>``."""
    ids = engine.run(
        "ps", "-aq", "--filter", f"label=targets.cluster={cluster}", check=False
    ).stdout.split()
    if ids:
        engine.run("rm", "-f", *ids, check=False)
