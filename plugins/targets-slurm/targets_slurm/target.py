"""The ``slurm`` kind: a run is an ``sbatch`` job submitted on a Slurm login node.

It builds on the public :class:`targets.compute.VMTarget`: the login node is reached over
SSH, and the agent shipped there uploads the snapshot into its content-addressed store
under ``~/.targets`` and materialises the run folder. Instead of launching the run's
supervisor detached on the login node, :meth:`SlurmTarget.start_run` asks the agent for
the supervisor's command (``launch="external"``) and submits it as the job's batch step.
On a compute node the supervisor then prepares the environment through the same cache
(on the shared home filesystem), runs the entry (with ``srun`` when the run has more than
one task), and writes ``status.json`` and the logs next to the run.

Design choice: the supervisor, not Slurm, stays the owner of the run's outcome: it
records the exit code, enforces ``max_run_duration_seconds`` and stops the process tree on
cancel, exactly as on every other kind. Slurm's job state is consulted only to tell a
queued job from a running one and to notice a job that ended without its supervisor
finishing (time limit, node failure, a manual ``scancel``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator

from targets.agent.protocol import TERMINAL, ManifestRow, RunSpec
from targets.compute import (
    AgentClient,
    AgentHandleData,
    Capability,
    Progress,
    RunHandle,
    RunState,
    SubmitRequest,
    VMOptions,
    VMTarget,
    agent_handle_data,
    no_progress,
    state_from_status,
)
from targets.errors import ConnectionFailed, TargetsError, UsageError
from targets_slurm import batch

__all__ = ["SlurmOptions", "SlurmTarget"]

_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


class SlurmOptions(VMOptions):
    """``targets attach NAME --type slurm --address LOGIN ...`` options: the SSH login
    (as for ``vm``) plus where jobs go."""

    partition: str | None = Field(default=None, description="Partition (default: Slurm's).")
    account: str | None = Field(default=None, description="Account charged for the jobs.")
    qos: str | None = Field(default=None, description="Quality of service of the jobs.")
    gpus_per_node: int | None = Field(
        default=None, ge=0, description="GPUs per node each job asks for (--gpus-per-node)."
    )
    prepare_minutes: int = Field(
        default=30,
        ge=0,
        description="Minutes added to a job's time limit (max_run_duration_seconds) for "
        "preparing its environment.",
    )

    @field_validator("partition", "account", "qos")
    @classmethod
    def _slurm_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _NAME.match(value) or value.startswith("-"):
            raise ValueError(
                f"{value!r} is not a Slurm name (letters, digits and _ . + - only; "
                "see `sinfo -s` and `sacctmgr show assoc user=$USER` on the login node)"
            )
        return value


class SlurmTarget(VMTarget):
    """A Slurm cluster, through its login node."""

    kind = "slurm"
    # VMTarget's aliases (remote, dsvm) are not this kind's.
    aliases = ()
    description = "a Slurm cluster: runs become sbatch jobs on its login node (over SSH)"
    options_model = SlurmOptions
    capabilities = frozenset(
        {
            Capability.VIRTUALENV,
            Capability.CONDA,
            Capability.MULTI_NODE,
            Capability.GPU,
            Capability.CANCEL,
            Capability.LIVE_LOGS,
        }
    )

    @property
    def slurm_options(self) -> SlurmOptions:
        if not isinstance(self.options, SlurmOptions):
            raise TypeError("a slurm target needs SlurmOptions")
        return self.options

    def _resources(self, request: SubmitRequest) -> batch.JobResources:
        o = self.slurm_options
        return batch.job_resources(
            request.config, gpus_per_node=o.gpus_per_node, prepare_minutes=o.prepare_minutes
        )

    def _sh(self, command: str, *, input: bytes | None = None) -> tuple[int, str, str]:
        code, out, err = self.run_command(command, input=input, timeout=120)
        return code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    # -- attach --------------------------------------------------------------------------

    def probe(self) -> dict[str, Any]:
        facts = super().probe()
        code, out, err = self._sh("sbatch --version && sinfo -h -o '%P %a %D %c'")
        if code != 0:
            raise ConnectionFailed(
                f"{self.slurm_options.address} does not look like a Slurm login node: "
                f"`sbatch --version` failed: {(err or out).strip()[-300:]}",
                hint="attach the login node of the cluster (where sbatch and squeue work)",
            )
        lines = out.splitlines()
        facts["slurm"] = lines[0].strip() if lines else None
        partitions = {line.split()[0].rstrip("*"): line.strip() for line in lines[1:] if line}
        facts["partitions"] = sorted(partitions)
        wanted = self.slurm_options.partition
        if wanted and wanted not in partitions:
            raise UsageError(
                f"there is no partition {wanted!r} on {self.slurm_options.address}",
                hint="use one of: " + ", ".join(sorted(partitions)) + " (or no --partition)",
            )
        return facts

    # -- runs ----------------------------------------------------------------------------

    def submit(self, request: SubmitRequest, progress: Progress = no_progress) -> RunHandle:
        self._resources(request)  # bad input fails here, before anything is sent
        return super().submit(request, progress)

    def start_run(
        self,
        agent: AgentClient,
        request: SubmitRequest,
        rows: Sequence[ManifestRow],
        spec: RunSpec,
    ) -> AgentHandleData:
        resources = self._resources(request)
        if resources.tasks > 1:
            environment = spec.get("environment") or {}
            if environment.get("managed"):
                python = "python"  # the environment's bin folder comes first on PATH
            else:
                python = str(
                    environment.get("interpreter") or spec.get("default_python") or "python3"
                )
            spec["entry"] = batch.srun_entry(spec["entry"], resources, python)
        o = self.slurm_options
        started = agent.start_external(request.run_id, rows, spec, python=o.python)
        command = batch.sbatch_command(
            request.run_id,
            started["run_dir"],
            resources,
            partition=o.partition,
            account=o.account,
            qos=o.qos,
        )
        script = batch.batch_script(started, request.run_id)
        code, out, err = self._sh(command, input=script.encode())
        job_id = out.strip().split(";")[0]
        if code != 0 or not job_id.isdigit():
            raise TargetsError(
                f"sbatch refused the job of run {request.run_id}: {(err or out).strip()[-500:]}",
                hint="check the partition, account and qos of the target (targets show "
                f"{self.name}) and the job's size against `sinfo` on the login node",
            )
        return {"job_id": job_id, "run_dir": started["run_dir"]}

    def _job_id(self, handle: RunHandle) -> str:
        job_id = agent_handle_data(handle).get("job_id", "")
        if not job_id.isdigit():
            raise UsageError(f"run {handle.run_id} has no Slurm job id in its handle")
        return job_id

    def status(self, handle: RunHandle) -> RunState:
        job_id = self._job_id(handle)
        # Slurm first, then status.json: see batch.combine.
        _code, out, _err = self._sh(batch.job_state_command(job_id))
        state = out.strip() or None
        written = self.agent().status_as_written(handle.run_id)
        tail = ""
        if state not in batch.QUEUED and written.get("status") not in TERMINAL:
            run_dir = agent_handle_data(handle).get("run_dir", "")
            if run_dir and (state is None or state.split()[0].rstrip("+") in batch.ENDED):
                _c, tail, _e = self._sh(f"tail -c 2000 {shlex.quote(run_dir + '/supervisor.log')}")
        return state_from_status(batch.combine(job_id, state, written, tail))

    def cancel(self, handle: RunHandle) -> None:
        # The durable record first (the supervisor also polls for it), then Slurm.
        self.agent().cancel(handle.run_id)
        self._sh(batch.cancel_command(self._job_id(handle)))
