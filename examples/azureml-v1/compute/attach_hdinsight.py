"""Attach the head node of a Spark cluster (HDInsight or any Spark head node over SSH).
Azure's docs spell the key's passphrase ``private_key_phrase``: it is accepted. Azure ML
v1 code; only the imports say ``targets.azureml``.

    MY_HDI_ADDRESS=myhdi-ssh.azurehdinsight.net MY_HDI_USER=sshuser MY_HDI_KEY=~/.ssh/id_rsa \
        MY_HDI_KEY_PASSPHRASE=... TARGETS_ACCEPT_HOST_KEY=1 python attach_hdinsight.py
"""

import os

from targets.azureml.core import Workspace
from targets.azureml.core.compute import ComputeTarget, HDInsightCompute
from targets.azureml.core.compute_target import ComputeTargetException

ws = Workspace.from_config()

try:
    attach_config = HDInsightCompute.attach_configuration(
        address=os.environ["MY_HDI_ADDRESS"],
        ssh_port=int(os.environ.get("MY_HDI_PORT", "22")),
        username=os.environ["MY_HDI_USER"],
        password=None,  # a key instead
        private_key_file=os.path.expanduser(os.environ["MY_HDI_KEY"]),
        private_key_phrase=os.environ.get("MY_HDI_KEY_PASSPHRASE"),
    )
    hdi_compute = ComputeTarget.attach(
        workspace=ws, name="myhdi", attach_configuration=attach_config
    )
    hdi_compute.wait_for_completion(show_output=True)
except ComputeTargetException as e:
    print(f"Caught = {e.message}")
