"""The settings of a managed cluster, with the names of Azure ML's provisioning
configuration (``AmlCompute.provisioning_configuration``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DEFAULT_IDLE_SECONDS", "ClusterSpec", "shown_settings", "summary_of"]

DEFAULT_IDLE_SECONDS = 1800
"""Azure ML's default ``idle_seconds_before_scaledown``."""


class ClusterSpec(BaseModel):
    """``targets create NAME --type cluster ...`` options, stored in ``targets.yml``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    provider: str
    """Who makes the nodes: docker, azure, ssh (or a provider plugin)."""
    vm_size: str | None = None
    """The node size (e.g. Standard_D2_v2); providers without sizes ignore it."""
    vm_priority: Literal["dedicated", "lowpriority"] = "dedicated"
    """lowpriority: cheaper nodes that the provider may take back (Azure Spot)."""
    min_nodes: int = Field(default=0, ge=0)
    """Nodes kept even when idle."""
    max_nodes: int = Field(ge=1)
    """The most nodes the cluster grows to."""
    idle_seconds_before_scaledown: int = Field(default=DEFAULT_IDLE_SECONDS, ge=0)
    """A node idle this long is removed (down to min_nodes)."""
    vnet_resource_group: str | None = None
    """Resource group of an existing virtual network (with vnet_name and subnet_name)."""
    vnet_name: str | None = None
    """Name of an existing virtual network."""
    subnet_name: str | None = None
    """Subnet of that virtual network for the nodes."""
    requeue_on_preemption: bool = True
    """A run that loses a low-priority node to preemption goes back to the queue (else fails)."""
    run_based: bool = False
    """A template, not a cluster: every run submitted to it gets a cluster of its own made
    from these settings (and the runconfig's ``amlcompute`` section), deleted when the run
    ends unless ``amlcompute.retain_cluster`` is set (Azure ML v1's run-based compute)."""
    provider_options: dict[str, Any] = Field(default_factory=dict)
    """The provider's own settings (validated by the provider's options model)."""

    @model_validator(mode="after")
    def _check(self) -> ClusterSpec:
        if self.min_nodes > self.max_nodes:
            raise ValueError(
                f"min_nodes ({self.min_nodes}) is larger than max_nodes ({self.max_nodes})"
            )
        vnet = {
            "vnet_resource_group": self.vnet_resource_group,
            "vnet_name": self.vnet_name,
            "subnet_name": self.subnet_name,
        }
        given = [k for k, v in vnet.items() if v]
        if given and len(given) != 3:
            missing = ", ".join(k for k in vnet if k not in given)
            raise ValueError(
                f"the virtual network needs vnet_resource_group, vnet_name and subnet_name "
                f"together; missing: {missing}"
            )
        return self


def summary_of(options: Mapping[str, Any]) -> str:
    """A cluster's line in ``targets list``, from its stored settings: ``docker, 0-3
    nodes`` (``docker, run-based template, 0-3 nodes`` for a template)."""
    size = f"{options.get('min_nodes', 0)}-{options.get('max_nodes')} nodes"
    template = "run-based template, " if options.get("run_based") else ""
    return f"{options.get('provider')}, {template}{size}"


def shown_settings(options: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting of a cluster for ``targets show``, defaults included, with the
    provider's own options that are set."""
    values = ClusterSpec.model_validate(dict(options)).model_dump(mode="json")
    provider_options = values.pop("provider_options") or {}
    values.update({k: v for k, v in provider_options.items() if v not in (None, [], {})})
    return values
