"""``azureml.core.compute.RemoteCompute``: a Linux machine over SSH (the ``vm`` kind).

v1's names map onto the vm kind's options: ``address`` -> ``address``, ``ssh_port`` ->
``ssh_port``, ``username`` -> ``username``, ``private_key_file`` -> ``ssh_key``; the
``password`` and ``private_key_passphrase`` are secrets (``password``,
``ssh_key_passphrase``) kept in the keyring, never in a file.
"""

from __future__ import annotations

from typing import Any, ClassVar

from targets.azureml.core.compute.compute import (
    ComputeTarget,
    ComputeTargetAttachConfiguration,
)
from targets.azureml.core.compute_target import ComputeTargetException

__all__ = ["RemoteCompute", "RemoteComputeAttachConfiguration", "ssh_attach_values"]


def ssh_attach_values(
    address: str | None,
    ssh_port: int | None,
    username: str | None,
    password: str | None,
    private_key_file: str | None,
    private_key_passphrase: str | None,
    resource_id: str | None,
) -> tuple[dict[str, Any], dict[str, str | None]]:
    """The vm kind's options and secrets for v1's SSH attach parameters."""
    if not address:
        raise ComputeTargetException(
            "give the machine's address: attach_configuration(address=HOST, ...)"
            + (" (an Azure resource_id is not looked up)" if resource_id else ""),
            hint="the host name or IP address the machine's sshd listens on",
            exit_code=2,
        )
    options = {
        "address": address,
        "ssh_port": ssh_port,
        "username": username,
        "ssh_key": str(private_key_file) if private_key_file else None,
    }
    secrets = {"password": password or None, "ssh_key_passphrase": private_key_passphrase or None}
    return options, secrets


class RemoteComputeAttachConfiguration(ComputeTargetAttachConfiguration):
    kind: ClassVar[str] = "vm"


class RemoteCompute(ComputeTarget):
    """An attached machine over SSH (``targets attach NAME --address ...``)."""

    _compute_type: ClassVar[str] = "VirtualMachine"
    _kinds: ClassVar[tuple[str, ...]] = ("vm",)

    @staticmethod
    def attach_configuration(
        address: str | None = None,
        ssh_port: int = 22,
        username: str | None = None,
        password: str | None = None,
        private_key_file: str | None = None,
        private_key_passphrase: str | None = None,
        resource_id: str | None = None,
        *,
        accept_host_key: bool = False,
    ) -> RemoteComputeAttachConfiguration:
        """v1's configuration; ``accept_host_key`` (ours) accepts an unknown host key."""
        options, secrets = ssh_attach_values(
            address,
            ssh_port,
            username,
            password,
            private_key_file,
            private_key_passphrase,
            resource_id,
        )
        return RemoteComputeAttachConfiguration(options, secrets, accept_host_key=accept_host_key)

    def update(
        self,
        *,
        address: str | None = None,
        ssh_port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        private_key_file: str | None = None,
        private_key_passphrase: str | None = None,
    ) -> None:
        """Ours (v1 has no update for an attached machine: detach and attach again):
        change what is given, as ``targets update NAME ...``. The machine is probed
        again; a new password or passphrase replaces the one in the keyring."""
        self._update_attached(
            {
                "address": address,
                "ssh_port": ssh_port,
                "username": username,
                "ssh_key": str(private_key_file) if private_key_file else None,
            },
            {"password": password, "ssh_key_passphrase": private_key_passphrase},
        )

    @property
    def address(self) -> str:
        return str(self._record.options.get("address", ""))

    @property
    def ssh_port(self) -> int:
        return int(self._record.options.get("ssh_port") or 22)
