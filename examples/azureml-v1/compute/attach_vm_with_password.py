"""Attach a machine that takes a password: the password goes to the OS keyring (never to
targets.yml). Azure ML v1 code; only the imports say ``targets.azureml``.

    MY_VM_ADDRESS=10.0.0.4 MY_VM_USER=me MY_VM_PASSWORD=... TARGETS_ACCEPT_HOST_KEY=1 \
        python attach_vm_with_password.py
"""

import os

from targets.azureml.core import Workspace
from targets.azureml.core.compute import ComputeTarget, RemoteCompute

ws = Workspace.from_config()

attach_config = RemoteCompute.attach_configuration(
    address=os.environ["MY_VM_ADDRESS"],
    ssh_port=int(os.environ.get("MY_VM_PORT", "22")),
    username=os.environ["MY_VM_USER"],
    password=os.environ["MY_VM_PASSWORD"],
)
compute = ComputeTarget.attach(ws, "pw-vm", attach_config)
compute.wait_for_completion(show_output=True)
