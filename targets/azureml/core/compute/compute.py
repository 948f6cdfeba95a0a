"""``azureml.core.compute.ComputeTarget``: a target of the workspace, found by name, and
the configurations ``attach`` and ``create`` take.

``ComputeTarget(workspace=ws, name=...)`` returns the object of the target's own class
(:class:`RemoteCompute` for a ``vm``, :class:`AmlCompute` for a ``cluster``...), or raises
:class:`ComputeTargetException` when there is none, as v1 does. Attaching goes through
:func:`targets.attachment.attach_target`, creating through
:func:`targets.clusters.lifecycle.create_cluster`: the rules are the CLI's.

Unknown SSH host keys: v1 never asked, and a script cannot answer. A key that is in no
known_hosts file is accepted only when the configuration says ``accept_host_key=True`` or
the environment has ``TARGETS_ACCEPT_HOST_KEY=1`` (the CLI's ``--accept-host-key``);
otherwise the attach raises a ComputeTargetException showing the fingerprint. A changed
key is never accepted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from targets.azureml.core.compute_target import ComputeTargetException, translated
from targets.errors import UnknownTargetError

if TYPE_CHECKING:
    from targets.workspace import TargetRecord, Workspace

__all__ = [
    "ComputeTarget",
    "ComputeTargetAttachConfiguration",
    "ComputeTargetProvisioningConfiguration",
]

SUCCEEDED = "Succeeded"
_CLASSES: dict[str, type[ComputeTarget]] = {}


def accept_host_key_from_env() -> bool:
    return os.environ.get("TARGETS_ACCEPT_HOST_KEY", "").strip().lower() in {"1", "true", "yes"}


class ComputeTargetAttachConfiguration:
    """What ``ComputeTarget.attach`` attaches: a kind, its options and its secrets."""

    kind: ClassVar[str] = ""

    def __init__(
        self,
        options: Mapping[str, Any],
        secrets: Mapping[str, str | None] | None = None,
        *,
        accept_host_key: bool = False,
    ) -> None:
        self.options = {k: v for k, v in options.items() if v is not None}
        self.secrets = {k: v for k, v in (secrets or {}).items() if v is not None}
        self.accept_host_key = accept_host_key

    def options_for(self, workspace: Workspace) -> dict[str, Any]:
        """The options attached in ``workspace``."""
        return dict(self.options)

    def validate_configuration(self) -> None:
        """Check the options against the kind's options model (as ``attach`` does)."""
        from pydantic import ValidationError

        from targets.attachment import options_error
        from targets.registry import load_kind

        with translated():
            cls = load_kind(self.kind)
            try:
                cls.options_model.model_validate(self.options)
            except ValidationError as exc:
                raise options_error(exc, f"options for kind {self.kind!r}") from None

    def __repr__(self) -> str:  # never the secrets
        return f"{type(self).__name__}({self.options!r}, secrets={sorted(self.secrets)})"


class ComputeTargetProvisioningConfiguration:
    """What ``ComputeTarget.create`` makes (see :class:`AmlCompute`)."""

    def make(self, workspace: Workspace, name: str) -> None:
        raise NotImplementedError


class ComputeTarget:
    """A compute target of the workspace (see the module doc)."""

    _compute_type: ClassVar[str] = ""
    """v1's ``type`` of the class (``VirtualMachine``, ``AmlCompute``...)."""
    _kinds: ClassVar[tuple[str, ...]] = ()

    workspace: Workspace
    name: str
    _record: TargetRecord

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for kind in cls._kinds:
            _CLASSES[kind] = cls

    def __new__(cls, workspace: Workspace, name: str) -> ComputeTarget:
        with translated():
            try:
                record = workspace.target_record(name)
            except UnknownTargetError as exc:
                raise ComputeTargetException(
                    f"ComputeTargetNotFound: compute target {name!r} not found in the "
                    f"workspace {str(workspace.root)!r}",
                    hint=exc.hint,
                    exit_code=exc.exit_code,
                    cause=exc,
                ) from None
        if record.name == "local":
            raise ComputeTargetException(
                "ComputeTargetNotFound: 'local' is this machine, not a compute target",
                hint="runs use it with compute_target='local'",
                exit_code=2,
            )
        own = _CLASSES.get(record.kind, ComputeTarget)
        if cls is not ComputeTarget and not issubclass(own, cls):
            raise ComputeTargetException(
                f"compute target {name!r} is a {record.kind} target, not a {cls.__name__}",
                hint=f"use {own.__name__}(workspace, {name!r}) or ComputeTarget(...)",
                exit_code=2,
            )
        obj = object.__new__(own)
        obj.workspace = workspace
        obj.name = record.name
        obj._record = record
        return obj

    def __init__(self, workspace: Workspace, name: str) -> None:
        pass  # made in __new__

    # -- what it is --------------------------------------------------------------------

    @property
    def type(self) -> str:
        return self._compute_type or self._record.kind

    @property
    def kind(self) -> str:
        """The ``targets`` kind (``vm``, ``cluster``...)."""
        return self._record.kind

    @property
    def provisioning_state(self) -> str:
        return SUCCEEDED

    @property
    def options(self) -> dict[str, Any]:
        return dict(self._record.options)

    def serialize(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, **self._record.to_yaml()}

    def refresh_state(self) -> None:
        with translated():
            self._record = self.workspace.target_record(self.name)

    def get_status(self) -> Any:
        """v1: the provisioning state (an attached target is ready once attached)."""
        self.refresh_state()
        return self.provisioning_state

    def wait_for_completion(self, show_output: bool = False, **_: Any) -> None:
        """Attaching is done when ``attach`` returns: nothing to wait for."""
        if show_output:
            print(self.provisioning_state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(workspace={self.workspace!r}, name={self.name!r})"

    def __str__(self) -> str:
        """The name: where v1 takes a compute target or its name
        (``ScriptRunConfig(compute_target=...)``), the object reads as its name."""
        return self.name

    # -- operations --------------------------------------------------------------------

    @staticmethod
    def attach(
        workspace: Workspace, name: str, attach_configuration: ComputeTargetAttachConfiguration
    ) -> ComputeTarget:
        """Attach ``name`` (see :func:`targets.attachment.attach_target`)."""
        from targets.attachment import attach_target

        if not isinstance(attach_configuration, ComputeTargetAttachConfiguration):
            raise ComputeTargetException(
                "attach takes an attach configuration, "
                "e.g. RemoteCompute.attach_configuration(...)",
                exit_code=2,
            )
        from targets.ssh.hostkeys import UnknownHostKeyError

        accept = attach_configuration.accept_host_key or accept_host_key_from_env()
        with translated():
            try:
                attach_target(
                    workspace,
                    name,
                    attach_configuration.kind,
                    attach_configuration.options_for(workspace),
                    secrets={k: str(v) for k, v in attach_configuration.secrets.items()},
                    accept_host_key=accept,
                )
            except UnknownHostKeyError as exc:
                raise ComputeTargetException(
                    exc.message,
                    hint="compare the fingerprint with the server's (on the server: "
                    "`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then accept it with "
                    "attach_configuration(..., accept_host_key=True) or by setting "
                    "TARGETS_ACCEPT_HOST_KEY=1 (or once with `targets attach ... "
                    "--accept-host-key`)",
                    exit_code=exc.exit_code,
                    cause=exc,
                ) from exc
        return ComputeTarget(workspace, name)

    @staticmethod
    def create(
        workspace: Workspace,
        name: str,
        provisioning_configuration: ComputeTargetProvisioningConfiguration,
    ) -> ComputeTarget:
        """Create ``name`` (see :func:`targets.clusters.lifecycle.create_cluster`)."""
        if not isinstance(provisioning_configuration, ComputeTargetProvisioningConfiguration):
            raise ComputeTargetException(
                "create takes a provisioning configuration, e.g. "
                "AmlCompute.provisioning_configuration(...)",
                exit_code=2,
            )
        with translated():
            provisioning_configuration.make(workspace, name)
        return ComputeTarget(workspace, name)

    @staticmethod
    def list(workspace: Workspace) -> list[ComputeTarget]:
        """The workspace's compute targets (``local`` left out, as in v1)."""
        with translated():
            names = [n for n in workspace.targets() if n != "local"]
        return [ComputeTarget(workspace, n) for n in names]

    def _update_attached(
        self, options: Mapping[str, Any], secrets: Mapping[str, str | None]
    ) -> None:
        """Change options and secrets of an attached target
        (:func:`targets.attachment.update_target`: validated and probed again, as
        ``targets update``); the option values None are left as they are."""
        from targets.attachment import update_target

        changes = {k: v for k, v in options.items() if v is not None}
        given = {k: str(v) for k, v in secrets.items() if v is not None}
        if not changes and not given:
            raise ComputeTargetException("update: nothing to change", exit_code=2)
        with translated():
            update_target(
                self.workspace,
                self.name,
                changes,
                secrets=given,
                accept_host_key=accept_host_key_from_env(),
            )
        self.refresh_state()

    def detach(self) -> None:
        """Forget the target and its secrets (:func:`targets.attachment.detach_target`)."""
        from targets.attachment import detach_target

        with translated():
            detach_target(self.workspace, self.name)

    def delete(self) -> None:
        raise ComputeTargetException(
            f"delete is not supported for the attached target {self.name!r}: it was not "
            "made here. Try detach() instead",
            exit_code=2,
        )
