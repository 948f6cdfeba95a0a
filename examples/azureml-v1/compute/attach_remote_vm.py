"""Attach a Linux machine over SSH as a v1 RemoteCompute, find it again, use it, and
detach it. Azure ML v1 code; only the imports say ``targets.azureml``.

    MY_VM_ADDRESS=vm.example.com MY_VM_USER=azureuser MY_VM_KEY=~/.ssh/id_ed25519 \
        TARGETS_ACCEPT_HOST_KEY=1 python attach_remote_vm.py
"""

import os

from targets.azureml.core import Workspace
from targets.azureml.core.compute import ComputeTarget, RemoteCompute
from targets.azureml.core.compute_target import ComputeTargetException

ws = Workspace.from_config()

compute_target_name = "attach-dsvm"
try:
    attached_dsvm_compute = RemoteCompute(workspace=ws, name=compute_target_name)
    print("found existing:", attached_dsvm_compute.name)
except ComputeTargetException:
    attach_config = RemoteCompute.attach_configuration(
        address=os.environ["MY_VM_ADDRESS"],
        ssh_port=int(os.environ.get("MY_VM_PORT", "22")),
        username=os.environ["MY_VM_USER"],
        private_key_file=os.path.expanduser(os.environ["MY_VM_KEY"]),
    )
    attached_dsvm_compute = ComputeTarget.attach(ws, compute_target_name, attach_config)
    attached_dsvm_compute.wait_for_completion(show_output=True)

print(attached_dsvm_compute.get_status())
print(sorted(ws.compute_targets))

if os.environ.get("DETACH"):
    attached_dsvm_compute.detach()
