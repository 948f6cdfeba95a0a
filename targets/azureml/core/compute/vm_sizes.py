"""``AmlCompute.supported_vmsizes(ws)``: the node sizes the workspace's cluster provider
offers, as v1's list of dicts (``name``, ``vCPUs``, ``gpus``, ``memoryGB``,
``maxResourceVolumeMB``, ``lowPriorityCapable``, ``premiumIO``), plus ``description``.

- A provider class with a ``supported_vm_sizes(location)`` class method (a plugin) is
  asked.
- ``docker``: its nodes are containers on one Docker engine, with no CPU or memory limit:
  each node is as large as the engine's machine. One size, ``container``, describes that
  machine, read from the engine (``docker info``: ``NCPU``, ``MemTotal``). ``vm_size`` is
  not used by this provider, so any name (v1's ``STANDARD_D2_V2`` too) is accepted.
- ``ssh``: its nodes are the attached ``vm`` targets it lists (``hosts``); one size per
  machine, named after the target, from what its probe found when it was attached
  (cores, memory, GPUs).
- ``azure``: not listed (no call is made): a ComputeTargetException names ``az vm
  list-sizes``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from targets.azureml.core.compute_target import ComputeTargetException, translated
from targets.errors import ConnectionFailed, UsageError

if TYPE_CHECKING:
    from targets.workspace import Workspace

__all__ = ["CONTAINER_SIZE", "supported_vm_sizes"]

CONTAINER_SIZE = "container"
"""The name of the docker provider's one size."""
_GB = 1024**3


def _size(
    name: str, cores: Any, memory_bytes: Any, gpus: int, description: str, low_priority: bool
) -> dict[str, Any]:
    return {
        "name": name,
        "vCPUs": int(cores) if isinstance(cores, int) else None,
        "gpus": gpus,
        "memoryGB": round(memory_bytes / _GB, 1) if isinstance(memory_bytes, int) else None,
        "maxResourceVolumeMB": None,
        "lowPriorityCapable": low_priority,
        "premiumIO": False,
        "description": description,
    }


def _docker_sizes(ws: Workspace, options: dict[str, Any]) -> list[dict[str, Any]]:
    """The engine's machine as one size (the provider's own connection to the engine)."""
    from pydantic import ValidationError

    from targets.attachment import options_error
    from targets.clusters.model import ClusterSpec
    from targets.clusters.providers.docker import DockerProvider, docker_errors
    from targets.clusters.provisioning import make_provider
    from targets.clusters.state import cluster_dir

    # The image is not needed to read the engine's facts: a placeholder satisfies the
    # options model when config.json names none yet.
    values = {**options, "image": options.get("image") or "-"}
    try:
        spec = ClusterSpec(provider="docker", max_nodes=1, provider_options=values)
        provider = make_provider(
            "vm-sizes", spec, cluster_dir(ws.dir, "vm-sizes"), lambda _: None, make_folder=False
        )
    except ValidationError as exc:
        raise options_error(exc, "cluster_provider_options of config.json") from None
    try:
        assert isinstance(provider, DockerProvider)
        client = provider.client()  # a ConnectionFailed naming the engine when none answers
        try:
            info = client.info()
        except docker_errors() as exc:
            raise ConnectionFailed(
                f"the Docker engine at {provider.engine} did not say what its machine has: {exc}"
            ) from exc
    finally:
        provider.close()
    cores, memory = info.get("NCPU"), info.get("MemTotal")
    return [
        _size(
            CONTAINER_SIZE,
            cores,
            memory,
            0,
            f"a container on the Docker engine at {provider.engine} ({info.get('Name')}), "
            f"sharing that machine's {cores} CPUs and "
            f"{round(memory / _GB, 1) if isinstance(memory, int) else '?'} GB: no limits are "
            "set, and vm_size is not used",
            low_priority=False,
        )
    ]


def _ssh_sizes(ws: Workspace, options: dict[str, Any]) -> list[dict[str, Any]]:
    """One size per attached machine the provider's ``hosts`` name, from its facts."""
    hosts = options.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        raise UsageError(
            "the ssh provider's hosts are not set",
            hint='set cluster_provider_options in config.json, e.g. {"hosts": ["vm1", "vm2"]} '
            "(attached vm targets)",
        )
    sizes = []
    for host in hosts:
        facts = ws.target_record(str(host)).facts
        gpus = facts.get("gpus")
        sizes.append(
            _size(
                str(host),
                facts.get("cores"),
                facts.get("memory_bytes"),
                len(gpus) if isinstance(gpus, list) else 0,
                f"the attached machine {host} ({facts.get('os') or 'unknown OS'}), as probed "
                "when it was attached",
                low_priority=False,
            )
        )
    return sizes


def supported_vm_sizes(ws: Workspace, location: str | None = None) -> list[dict[str, Any]]:
    """The sizes the workspace's provider offers (see the module doc)."""
    from targets.azureml.core.compute.amlcompute import workspace_provider
    from targets.clusters.provider import load_provider

    provider, options = workspace_provider(ws)
    with translated():
        cls = load_provider(provider)
        lister = getattr(cls, "supported_vm_sizes", None)
        if lister is not None:
            return list(lister(location))
        if provider == "docker":
            return _docker_sizes(ws, options)
        if provider == "ssh":
            return _ssh_sizes(ws, options)
    raise ComputeTargetException(
        f"the {provider} provider of this workspace lists no VM sizes: "
        + (
            "Azure's sizes for a region are listed by `az vm list-sizes --location LOCATION`"
            if provider == "azure"
            else "it takes no vm_size"
        ),
        hint="the workspace's provider is config.json's cluster_provider "
        "(or TARGETS_CLUSTER_PROVIDER)",
        exit_code=2,
    )
