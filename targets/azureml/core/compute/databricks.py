"""``azureml.core.compute.DatabricksCompute``: an Azure Databricks workspace (the
``databricks`` kind). ``resource_group`` and ``workspace_name`` find its URL in the
subscription of the v1 workspace (``config.json``'s ``subscription_id``, else
``AZURE_SUBSCRIPTION_ID``); the ``access_token`` is the secret ``token``, kept in the
keyring."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from targets.azureml.core.compute.compute import (
    ComputeTarget,
    ComputeTargetAttachConfiguration,
)

if TYPE_CHECKING:
    from targets.workspace import Workspace

__all__ = ["DatabricksAttachConfiguration", "DatabricksCompute"]


class DatabricksAttachConfiguration(ComputeTargetAttachConfiguration):
    kind: ClassVar[str] = "databricks"

    def options_for(self, workspace: Workspace) -> dict[str, Any]:
        """The v1 workspace's subscription when none is given (found by name only)."""
        options = dict(self.options)
        subscription = getattr(workspace, "subscription_id", None)
        if "workspace_name" in options and "subscription" not in options and subscription:
            options["subscription"] = subscription
        return options


class DatabricksCompute(ComputeTarget):
    """An attached Databricks workspace (``targets attach NAME --type databricks ...``)."""

    _compute_type: ClassVar[str] = "Databricks"
    _kinds: ClassVar[tuple[str, ...]] = ("databricks",)

    @staticmethod
    def attach_configuration(
        resource_group: str | None = None,
        workspace_name: str | None = None,
        resource_id: str | None = None,
        access_token: str = "",
        *,
        host: str | None = None,
        subscription: str | None = None,
        cluster_id: str | None = None,
        new_cluster: str | dict[str, str | int] | None = None,
    ) -> DatabricksAttachConfiguration:
        """v1's configuration. A ``resource_id``
        (``/subscriptions/S/resourceGroups/G/providers/Microsoft.Databricks/workspaces/W``)
        stands for the three names. Ours: ``host`` gives the workspace URL directly;
        ``cluster_id`` (an existing cluster) or ``new_cluster`` (a job cluster per run,
        ``spark_version=...,node_type_id=...,num_workers=N``) says where runs go, as the
        kind requires one of them."""
        if resource_id:
            parts = [p for p in resource_id.split("/") if p]
            found = {parts[i].lower(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}
            subscription = subscription or found.get("subscriptions")
            resource_group = resource_group or found.get("resourcegroups")
            workspace_name = workspace_name or found.get("workspaces")
        options = {
            "host": host,
            "resource_group": resource_group,
            "workspace_name": workspace_name,
            "subscription": subscription,
            "cluster_id": cluster_id,
            "new_cluster": new_cluster,
        }
        return DatabricksAttachConfiguration(options, {"token": access_token or None})
