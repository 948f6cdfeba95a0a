"""``azureml.core.compute.HDInsightCompute``: the head node of a Spark cluster over SSH
(the ``hdinsight`` kind). Same parameters as :class:`RemoteCompute`; Azure's own docs
spell ``private_key_passphrase`` as ``private_key_phrase``, and both are accepted."""

from __future__ import annotations

from typing import ClassVar

from targets.azureml.core.compute.compute import (
    ComputeTarget,
    ComputeTargetAttachConfiguration,
)
from targets.azureml.core.compute.remote import ssh_attach_values
from targets.azureml.core.compute_target import ComputeTargetException

__all__ = ["HDInsightAttachConfiguration", "HDInsightCompute"]


class HDInsightAttachConfiguration(ComputeTargetAttachConfiguration):
    kind: ClassVar[str] = "hdinsight"


class HDInsightCompute(ComputeTarget):
    """An attached Spark head node (``targets attach NAME --type hdinsight ...``)."""

    _compute_type: ClassVar[str] = "HDInsight"
    _kinds: ClassVar[tuple[str, ...]] = ("hdinsight",)

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
        private_key_phrase: str | None = None,
        accept_host_key: bool = False,
    ) -> HDInsightAttachConfiguration:
        if private_key_phrase and private_key_passphrase:
            raise ComputeTargetException(
                "give private_key_passphrase or private_key_phrase, not both", exit_code=2
            )
        options, secrets = ssh_attach_values(
            address,
            ssh_port,
            username,
            password,
            private_key_file,
            private_key_passphrase or private_key_phrase,
            resource_id,
        )
        return HDInsightAttachConfiguration(options, secrets, accept_host_key=accept_host_key)
