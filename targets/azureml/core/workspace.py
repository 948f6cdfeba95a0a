"""``azureml.core.Workspace`` for ``targets``: a :class:`targets.workspace.Workspace`
(a project folder with ``.targets/``) that also knows v1's labels and ``compute_targets``.

``Workspace.from_config(path=None)`` reads v1's ``config.json`` (in the folder, its
``.azureml/`` folder, or a parent's; or the file ``path``) and keeps
``subscription_id``, ``resource_group`` and ``workspace_name`` as labels: no service is
contacted. The ``targets`` workspace opened is the nearest one to the file's folder. Two
optional keys that the real SDK ignores choose how ``ComputeTarget.create`` makes
clusters: ``cluster_provider`` (default: ``TARGETS_CLUSTER_PROVIDER``, else ``docker``)
and ``cluster_provider_options`` (the provider's options, e.g. ``{"image": ...}`` for
docker).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from targets.azureml.core.compute_target import ComputeTargetException
from targets.errors import UsageError
from targets.workspace import Workspace as _Workspace

if TYPE_CHECKING:
    from targets.azureml.core.compute.compute import ComputeTarget

__all__ = ["DEFAULT_CLUSTER_PROVIDER", "Workspace", "find_config"]

DEFAULT_CLUSTER_PROVIDER = "docker"
CONFIG_NAMES = ("config.json",)


def find_config(path: str | Path | None = None) -> Path | None:
    """v1's search: ``path`` itself when it is a file; else ``config.json`` in the folder
    or its ``.azureml/``, then in each parent folder."""
    start = Path(path or os.getcwd()).expanduser().resolve()
    if start.is_file():
        return start
    for folder in (start, *start.parents):
        for sub in (folder, folder / ".azureml"):
            for name in CONFIG_NAMES:
                if (sub / name).is_file():
                    return sub / name
    return None


class Workspace(_Workspace):
    """A ``targets`` workspace with Azure ML v1's workspace labels."""

    def __init__(
        self,
        root: str | Path,
        *,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(root)
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.name = workspace_name or self.root.name
        self.settings: dict[str, Any] = dict(settings or {})

    @classmethod
    def from_config(
        cls, path: str | Path | None = None, auth: Any = None, _logger: Any = None, **_: Any
    ) -> Workspace:
        """The workspace of v1's ``config.json`` (see the module doc); without one, the
        nearest ``targets`` workspace with no labels. ``auth`` is accepted and unused."""
        config = find_config(path)
        if config is None:
            if path is not None and not Path(path).expanduser().exists():
                raise UsageError(
                    f"no config.json at {path}",
                    hint="give the folder or the file of the workspace's config.json",
                )
            return cls._of(_Workspace.find(path), {})
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"cannot read the workspace configuration {config}: {exc}",
                hint="it is a JSON object with subscription_id, resource_group, workspace_name",
            ) from None
        if not isinstance(data, dict):
            raise UsageError(f"the workspace configuration {config} is not a JSON object")
        folder = config.parent.parent if config.parent.name == ".azureml" else config.parent
        return cls._of(_Workspace.find(folder), data)

    @classmethod
    def _of(cls, found: _Workspace, data: dict[str, Any]) -> Workspace:
        def text(key: str) -> str | None:
            value = data.get(key)
            return str(value) if value else None

        return cls(
            found.root,
            subscription_id=text("subscription_id"),
            resource_group=text("resource_group"),
            workspace_name=text("workspace_name"),
            settings={k: v for k, v in data.items() if k.startswith("cluster_provider")},
        )

    @property
    def cluster_provider(self) -> str:
        """Who makes the nodes of ``ComputeTarget.create``'s clusters (see module doc)."""
        chosen = self.settings.get("cluster_provider") or os.environ.get("TARGETS_CLUSTER_PROVIDER")
        return str(chosen or DEFAULT_CLUSTER_PROVIDER)

    @property
    def cluster_provider_options(self) -> dict[str, Any]:
        options = self.settings.get("cluster_provider_options") or {}
        if not isinstance(options, dict):
            raise ComputeTargetException(
                "cluster_provider_options in config.json is not a JSON object", exit_code=2
            )
        return dict(options)

    @property
    def compute_targets(self) -> dict[str, ComputeTarget]:
        """The workspace's compute targets by name (``local`` left out, as in v1)."""
        from targets.azureml.core.compute.compute import ComputeTarget

        return {target.name: target for target in ComputeTarget.list(self)}

    def get_details(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "root": str(self.root),
        }

    def __repr__(self) -> str:
        return (
            f"Workspace.create(name={self.name!r}, subscription_id={self.subscription_id!r}, "
            f"resource_group={self.resource_group!r})"
        )
