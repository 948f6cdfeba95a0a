"""``azureml.core.compute.AmlCompute``: a managed cluster (the ``cluster`` kind, made by
:func:`targets.clusters.lifecycle.create_cluster`).

``AmlCompute.provisioning_configuration(...)`` keeps v1's names, which are the cluster's
own (:class:`targets.clusters.model.ClusterSpec`): ``vm_size``, ``vm_priority``,
``min_nodes``, ``max_nodes`` (default 4, as v1), ``idle_seconds_before_scaledown``, and
``vnet_resourcegroup_name`` -> ``vnet_resource_group``, ``vnet_name``, ``subnet_name``.
Who makes the nodes is the workspace's choice (``Workspace.cluster_provider``: the
``cluster_provider`` key of ``config.json``, else ``TARGETS_CLUSTER_PROVIDER``, else
``docker``), with the provider's options from ``cluster_provider_options``; the keyword
``provider=`` (ours) overrides both. ``admin_username`` becomes the provider's login user
(``username`` for docker, ``admin_username`` for azure). ``admin_user_ssh_key`` and
``admin_user_password`` are not used: the cluster makes its own key pair (kept in the
keyring) and sets no password; a warning says so.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from targets.azureml.core.compute.compute import (
    ComputeTarget,
    ComputeTargetProvisioningConfiguration,
)
from targets.azureml.core.compute_target import ComputeTargetException, translated

if TYPE_CHECKING:
    from targets.clusters.model import ClusterSpec
    from targets.workspace import Workspace

__all__ = ["AmlCompute", "AmlComputeProvisioningConfiguration", "AmlComputeStatus"]

DEFAULT_MAX_NODES = 4
"""v1's ``max_nodes`` when none is given."""
_LOGIN_USER_FIELDS = ("admin_username", "username")


def workspace_provider(workspace: Workspace) -> tuple[str, dict[str, Any]]:
    """The provider (and its options) the workspace makes clusters with."""
    from targets.azureml.core.workspace import DEFAULT_CLUSTER_PROVIDER
    from targets.azureml.core.workspace import Workspace as V1Workspace

    if isinstance(workspace, V1Workspace):
        return workspace.cluster_provider, workspace.cluster_provider_options
    import os

    return os.environ.get("TARGETS_CLUSTER_PROVIDER") or DEFAULT_CLUSTER_PROVIDER, {}


class AmlComputeProvisioningConfiguration(ComputeTargetProvisioningConfiguration):
    """v1's provisioning configuration, as cluster settings (see the module doc)."""

    def __init__(
        self,
        settings: dict[str, Any],
        *,
        admin_username: str | None = None,
        provider: str | None = None,
        provider_options: dict[str, Any] | None = None,
    ) -> None:
        self.settings = {k: v for k, v in settings.items() if v is not None}
        self.admin_username = admin_username
        self.provider = provider
        self.provider_options = dict(provider_options or {})

    def spec_for(self, workspace: Workspace) -> ClusterSpec:
        """The validated cluster settings in ``workspace`` (a UsageError when refused)."""
        from targets.clusters.lifecycle import cluster_spec
        from targets.clusters.provider import load_provider

        provider, options = workspace_provider(workspace)
        if self.provider:
            provider, options = self.provider, {}
        options.update(self.provider_options)
        if self.admin_username:
            fields = load_provider(provider).options_model.model_fields
            user_field = next((f for f in _LOGIN_USER_FIELDS if f in fields), None)
            if user_field is None:
                warnings.warn(
                    f"admin_username is not used: the {provider} provider has no login user "
                    "setting",
                    stacklevel=3,
                )
            else:
                options.setdefault(user_field, self.admin_username)
        from targets.errors import UsageError

        try:
            return cluster_spec({**self.settings, "provider": provider}, options)
        except UsageError as exc:
            if self.provider or not options_refused(exc):
                raise
            raise UsageError(
                f"AmlCompute clusters are made by the workspace's {provider} provider, whose "
                f"options are refused: {exc.message.replace('--', '')}",
                hint='set "cluster_provider_options" in .azureml/config.json (for docker: '
                '{"image": "IMAGE"}, an image with sshd already in the engine; see '
                "docs/targets/clusters-docker.md), or choose another provider there with "
                '"cluster_provider" (e.g. "ssh" for machines you have)',
            ) from None

    def validate_configuration(self, workspace: Workspace | None = None) -> None:
        from targets.workspace import Workspace as _Workspace

        with translated():
            self.spec_for(workspace or _Workspace.find())

    def make(self, workspace: Workspace, name: str) -> None:
        from targets.clusters.lifecycle import create_cluster

        create_cluster(workspace, name, self.spec_for(workspace))

    def __repr__(self) -> str:
        return f"AmlComputeProvisioningConfiguration({self.settings!r})"


@dataclass
class AmlComputeStatus:
    """v1's ``AmlCompute.get_status()``: the scale settings and the nodes now."""

    provisioning_state: str
    current_node_count: int
    node_state_counts: dict[str, int]
    scale_settings: dict[str, Any]
    vm_size: str | None
    vm_priority: str
    errors: list[str] = field(default_factory=list)

    @property
    def target_node_count(self) -> int:
        return int(self.scale_settings.get("minNodeCount", 0))

    def serialize(self) -> dict[str, Any]:
        return {
            "provisioningState": self.provisioning_state,
            "currentNodeCount": self.current_node_count,
            "nodeStateCounts": dict(self.node_state_counts),
            "scaleSettings": dict(self.scale_settings),
            "vmSize": self.vm_size,
            "vmPriority": self.vm_priority,
            "errors": list(self.errors),
        }


class AmlCompute(ComputeTarget):
    """A managed cluster (``targets create NAME --type cluster ...``)."""

    _compute_type: ClassVar[str] = "AmlCompute"
    _kinds: ClassVar[tuple[str, ...]] = ("cluster",)

    @staticmethod
    def provisioning_configuration(
        vm_size: str = "",
        vm_priority: str = "dedicated",
        min_nodes: int = 0,
        max_nodes: int | None = None,
        idle_seconds_before_scaledown: int | None = None,
        admin_username: str | None = None,
        admin_user_password: str | None = None,
        admin_user_ssh_key: str | None = None,
        vnet_resourcegroup_name: str | None = None,
        vnet_name: str | None = None,
        subnet_name: str | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        *,
        provider: str | None = None,
        provider_options: dict[str, Any] | None = None,
        **ignored: Any,
    ) -> AmlComputeProvisioningConfiguration:
        """v1's provisioning configuration (see the module doc). Settings of v1 that a
        cluster here has no use for (``tags``, ``description``, ``location``,
        ``remote_login_port_public_access``...) are accepted and not kept."""
        if admin_user_password or admin_user_ssh_key:
            warnings.warn(
                "admin_user_password and admin_user_ssh_key are not used: the cluster makes "
                "its own key pair (in the keyring) and sets no password",
                stacklevel=2,
            )
        del tags, description, ignored
        settings = {
            "vm_size": vm_size or None,
            "vm_priority": vm_priority,
            "min_nodes": min_nodes,
            "max_nodes": DEFAULT_MAX_NODES if max_nodes is None else max_nodes,
            "idle_seconds_before_scaledown": idle_seconds_before_scaledown,
            "vnet_resource_group": vnet_resourcegroup_name,
            "vnet_name": vnet_name,
            "subnet_name": subnet_name,
        }
        return AmlComputeProvisioningConfiguration(
            settings,
            admin_username=admin_username,
            provider=provider,
            provider_options=provider_options,
        )

    @staticmethod
    def supported_vmsizes(workspace: Workspace, location: str | None = None) -> list[Any]:
        """The node sizes the workspace's provider offers, as v1's list of dicts
        (:func:`targets.azureml.core.compute.vm_sizes.supported_vm_sizes`: the docker
        provider's one size is the engine's machine; the ssh provider's are its machines)."""
        from targets.azureml.core.compute.vm_sizes import supported_vm_sizes

        return supported_vm_sizes(workspace, location)

    # -- the cluster ---------------------------------------------------------------------

    @property
    def spec(self) -> ClusterSpec:
        from targets.clusters.model import ClusterSpec

        return ClusterSpec.model_validate(dict(self._record.options))

    @property
    def vm_size(self) -> str | None:
        return self.spec.vm_size

    @property
    def vm_priority(self) -> str:
        return self.spec.vm_priority

    @property
    def scale_settings(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "minNodeCount": spec.min_nodes,
            "maxNodeCount": spec.max_nodes,
            "nodeIdleTimeBeforeScaleDown": f"PT{spec.idle_seconds_before_scaledown}S",
        }

    def _node_counts(self) -> dict[str, int]:
        from targets.clusters.state import ClusterState, cluster_dir

        folder = cluster_dir(self.workspace.dir, self.name)
        counts: dict[str, int] = {}
        if not (folder / "state.db").is_file():  # opening it would make it
            return counts
        state = ClusterState(folder)
        try:
            for row in state.nodes():
                key = str(row.node.state)
                if key == "running":
                    key = "running" if row.busy_run else "idle"
                counts[key] = counts.get(key, 0) + 1
        finally:
            state.close()
        return counts

    def get_status(self) -> AmlComputeStatus:
        self.refresh_state()
        spec = self.spec
        with translated():
            counts = {} if spec.run_based else self._node_counts()
        current = sum(n for k, n in counts.items() if k in ("idle", "running"))
        return AmlComputeStatus(
            provisioning_state=self.provisioning_state,
            current_node_count=current,
            node_state_counts=counts,
            scale_settings=self.scale_settings,
            vm_size=spec.vm_size,
            vm_priority=spec.vm_priority,
        )

    def wait_for_completion(
        self,
        show_output: bool = False,
        min_node_count: int | None = None,
        timeout_in_minutes: float = 25,
        is_delete_operation: bool = False,
        **_: Any,
    ) -> None:
        """Creating is done when ``create`` returns; with ``min_node_count``, wait (up
        to ``timeout_in_minutes``) until that many nodes are up."""
        if is_delete_operation:
            return
        status = self.get_status()
        if min_node_count:
            deadline = time.monotonic() + timeout_in_minutes * 60
            while status.current_node_count < min_node_count:
                if time.monotonic() > deadline:
                    raise ComputeTargetException(
                        f"cluster {self.name!r} has {status.current_node_count} of "
                        f"{min_node_count} nodes after {timeout_in_minutes} minutes",
                        hint=f"targets show {self.name} shows its nodes and events",
                    )
                time.sleep(2)
                status = self.get_status()
        if show_output:
            print(
                f"{status.provisioning_state}\nAmlCompute wait for completion finished\n"
                f"Minimum number of nodes requested have been provisioned "
                f"({status.current_node_count} up, {self.spec.min_nodes}-"
                f"{self.spec.max_nodes} nodes)"
            )

    def update(
        self,
        min_nodes: int | None = None,
        max_nodes: int | None = None,
        idle_seconds_before_scaledown: int | None = None,
    ) -> None:
        """Change the scale settings (:func:`targets.clusters.lifecycle.update_cluster`)."""
        from targets.clusters.lifecycle import update_cluster

        with translated():
            update_cluster(
                self.workspace,
                self.name,
                min_nodes=min_nodes,
                max_nodes=max_nodes,
                idle_seconds_before_scaledown=idle_seconds_before_scaledown,
            )
        self.refresh_state()

    def delete(self) -> None:
        """Remove the cluster, its nodes and its key
        (:func:`targets.clusters.lifecycle.delete_cluster`; refused while runs are open)."""
        from targets.clusters.lifecycle import delete_cluster

        with translated():
            delete_cluster(self.workspace, self.name)

    def detach(self) -> None:
        raise ComputeTargetException(
            f"detach is not supported for the cluster {self.name!r}: it was made here. "
            "Try delete() instead",
            exit_code=2,
        )


def options_refused(exc: Exception) -> bool:
    """Whether ``exc`` is the refusal of a provider's options (as opposed to the cluster's
    own settings, such as ``max_nodes``)."""
    return "options for the" in str(exc)
