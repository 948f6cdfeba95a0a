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

``Workspace.get(name)`` is the workspace whose ``config.json`` names it (searched from the
current folder upwards), else the nearest ``targets`` workspace whose folder has that
name. ``ws.write_config(path=None, file_name=None)`` writes ``.azureml/config.json``.

A run whose target is ``amlcompute`` (v1's run-based compute) gets the run-based template
made from the workspace's provider when the run resolves its target (see
:mod:`targets.azureml.core.compute.run_based`).
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
    from targets.compute.base import ComputeTarget as Target

__all__ = ["DEFAULT_CLUSTER_PROVIDER", "Workspace", "find_config"]

DEFAULT_CLUSTER_PROVIDER = "docker"
CONFIG_NAMES = ("config.json",)
CONFIG_FOLDER = ".azureml"


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
    def get(
        cls,
        name: str,
        auth: Any = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        **_: Any,
    ) -> Workspace:
        """v1's ``Workspace.get``: the workspace whose ``config.json`` (found from the
        current folder upwards, as ``from_config`` finds it) has ``workspace_name`` ``name``
        (and the given subscription and resource group), else the nearest ``targets``
        workspace whose folder is called ``name``. No service is contacted; ``auth`` is
        accepted and unused. A UsageError says what was found instead."""
        given = {"subscription_id": subscription_id, "resource_group": resource_group}
        config = find_config()
        seen: list[str] = []
        if config is not None:
            ws = cls.from_config(config)
            labels = {"subscription_id": ws.subscription_id, "resource_group": ws.resource_group}
            if ws.name == name and all(v is None or labels[k] == v for k, v in given.items()):
                return ws
            seen.append(
                f"{config} names workspace {ws.name!r} (subscription {ws.subscription_id}, "
                f"resource group {ws.resource_group})"
            )
        nearest = _Workspace.find()
        if nearest.root.name == name:
            return cls._of(nearest, {"workspace_name": name, **given})
        seen.append(f"the nearest targets workspace is {str(nearest.root)!r}")
        raise UsageError(
            f"no workspace named {name!r} here: " + "; ".join(seen),
            hint="run from the project folder whose .azureml/config.json names it "
            "(ws.write_config() writes one), or open one with Workspace.from_config(path=...)",
        )

    def write_config(self, path: str | Path | None = None, file_name: str | None = None) -> Path:
        """v1's ``write_config``: the labels (and this package's ``cluster_provider``
        settings) to ``PATH/.azureml/FILE_NAME`` (default: the current folder and
        ``config.json``), which ``from_config`` reads. Returns the file written."""
        name = file_name or CONFIG_NAMES[0]
        if Path(name).name != name or name in {".", ".."}:
            raise UsageError(
                f"file_name {name!r} is a path", hint="give a file name, e.g. config.json"
            )
        folder = Path(path or os.getcwd()).expanduser()
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{str(folder)!r} is not a folder", hint="give the project folder")
        data: dict[str, Any] = {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "workspace_name": self.name,
            **self.settings,
        }
        target = folder / CONFIG_FOLDER / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=4) + "\n", encoding="utf-8")
        return target

    @classmethod
    def create(
        cls,
        name: str,
        auth: Any = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        create_resource_group: bool = True,
        exist_ok: bool = False,
        show_output: bool = True,
        **_: Any,
    ) -> Workspace:
        """v1's ``Workspace.create``: here, the ``targets`` workspace of the current
        folder (its ``.targets/``, made when missing; nothing is contacted or deleted),
        labelled with ``name``, ``subscription_id`` and ``resource_group``.
        ``ws.write_config()`` keeps the labels for ``from_config``. ``location``,
        ``create_resource_group``, ``exist_ok``, ``sku`` and the like are accepted and
        not used: a workspace is a folder, so making it again changes nothing."""
        if not isinstance(name, str) or not name.strip():
            raise UsageError("Workspace.create needs a name", hint="e.g. name='my-workspace'")
        found = _Workspace.find(None)
        found.ensure()
        ws = cls(
            found.root,
            subscription_id=subscription_id,
            resource_group=resource_group,
            workspace_name=name,
        )
        if show_output:
            print(f"Workspace {name!r}: {ws.root / '.targets'}")
        return ws

    def get_mlflow_tracking_uri(self, _with_auth: bool = False) -> str:
        """The workspace's MLflow store (``.targets/mlruns``, a file store that
        ``mlflow ui --backend-store-uri`` reads), as a ``file:`` URI."""
        return (self.dir / "mlruns").resolve().as_uri()

    def get_target(self, name: str) -> Target:
        """The target ``name``; ``amlcompute`` (v1's run-based compute) is made from the
        workspace's cluster provider when it does not exist yet (see the module doc)."""
        from targets.azureml.core.compute.run_based import RUN_BASED_TARGET, ensure_run_based

        if name == RUN_BASED_TARGET:
            ensure_run_based(self)
        return super().get_target(name)

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
