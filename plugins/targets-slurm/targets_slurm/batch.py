"""What a run asks of Slurm, and what Slurm says about it: pure functions, no I/O.

- :func:`job_resources`: nodes, tasks per node, GPUs and the time limit of a runconfig;
- :func:`sbatch_command` and :func:`batch_script`: the submission;
- :func:`srun_entry`: a multi-task run's entry, started once per task by ``srun``;
- :func:`combine`: the run's state from the job's state and the run's ``status.json``.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from typing import Any

from targets.agent.protocol import (
    CANCELED,
    COMPLETED,
    FAILED,
    FINALIZING,
    PREPARING,
    TERMINAL,
    UNKNOWN,
    Entry,
    ExternalCommand,
    StatusRecord,
)
from targets.agent.protocol import (
    QUEUED as QUEUED_STATUS,
)
from targets.errors import UsageError

__all__ = [
    "ENDED",
    "QUEUED",
    "JobResources",
    "batch_script",
    "cancel_command",
    "combine",
    "job_resources",
    "job_state_command",
    "sbatch_command",
    "srun_entry",
]

#: Job states in which the job has not started yet.
QUEUED = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED"})
#: Job states of a job that has ended.
ENDED = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)
_MPI = ("OpenMpi", "IntelMpi")
_TORCH = ("Gloo", "Nccl")


@dataclass(frozen=True, slots=True)
class JobResources:
    """What one run's job asks for."""

    nodes: int
    tasks_per_node: int
    gpus_per_node: int | None
    time_minutes: int | None

    @property
    def tasks(self) -> int:
        return self.nodes * self.tasks_per_node


def job_resources(config: Any, *, gpus_per_node: int | None, prepare_minutes: int) -> JobResources:
    """The job of a :class:`~targets.RunConfiguration`. Raises :class:`UsageError` for
    what a Slurm job cannot run."""
    communicator = config.communicator
    if communicator == "ParameterServer":
        raise UsageError(
            "the slurm kind does not run communicator ParameterServer (TensorFlow parameter "
            "servers)",
            hint="use communicator OpenMpi, IntelMpi, Gloo or Nccl, or None",
        )
    if config.environment.docker.enabled:
        raise UsageError(
            "the slurm kind does not run Docker environments",
            hint="set environment.docker.enabled: false (the job uses a conda or virtualenv "
            "environment built in ~/.targets on the shared filesystem)",
        )
    nodes = config.node_count
    tasks_per_node = 1
    if communicator in _MPI:
        nodes = config.mpi.node_count or nodes
        tasks_per_node = config.mpi.process_count_per_node
    elif communicator in _TORCH:
        nodes = config.pytorch.node_count or nodes
        total = config.pytorch.process_count or nodes
        if total % nodes:
            raise UsageError(
                f"pytorch.process_count {total} does not divide evenly over {nodes} nodes",
                hint="make process_count a multiple of node_count",
            )
        tasks_per_node = max(1, total // nodes)
    gpus = gpus_per_node
    if gpus is None and config.environment.docker.gpu:
        gpus = 1
    limit = config.max_run_duration_seconds
    minutes = None if limit is None else math.ceil(limit / 60) + prepare_minutes
    return JobResources(nodes, tasks_per_node, gpus or None, minutes)


def srun_entry(entry: Entry, resources: JobResources, python: str) -> Entry:
    """The entry of a multi-task run: ``srun`` starts the script (or command) once per
    task, each with the torch.distributed variables set from Slurm's."""
    ranks = (
        'export RANK="$SLURM_PROCID" WORLD_SIZE="$SLURM_NTASKS" LOCAL_RANK="$SLURM_LOCALID" '
        f'NODE_RANK="$SLURM_NODEID" LOCAL_WORLD_SIZE={resources.tasks_per_node}; exec "$@"'
    )
    if entry.get("script"):
        argv = [python, str(entry["script"]), *[str(a) for a in entry.get("arguments") or []]]
    elif isinstance(command := entry.get("command"), list):
        argv = [str(c) for c in command]
    else:
        argv = ["/bin/sh", "-c", str(command)]
    srun = [
        "srun",
        f"--nodes={resources.nodes}",
        f"--ntasks-per-node={resources.tasks_per_node}",
        "--kill-on-bad-exit=1",
    ]
    return {"command": [*srun, "/bin/sh", "-c", ranks, "targets-task", *argv]}


def sbatch_command(
    run_id: str,
    run_dir: str,
    resources: JobResources,
    *,
    partition: str | None,
    account: str | None,
    qos: str | None,
) -> str:
    """The ``sbatch`` command line (the script comes on its stdin)."""
    args = [
        "sbatch",
        "--parsable",
        f"--job-name=targets-{run_id}",
        f"--chdir={run_dir}",
        f"--output={run_dir}/supervisor.log",
        "--open-mode=append",
        f"--nodes={resources.nodes}",
        f"--ntasks-per-node={resources.tasks_per_node}",
    ]
    if resources.gpus_per_node:
        args.append(f"--gpus-per-node={resources.gpus_per_node}")
    if resources.time_minutes is not None:
        args.append(f"--time={resources.time_minutes}")
    for flag, value in (("--partition", partition), ("--account", account), ("--qos", qos)):
        if value:
            args.append(f"{flag}={value}")
    return shlex.join(args)


def batch_script(started: ExternalCommand, run_id: str) -> str:
    """The job's script: the run's supervisor in the foreground, as the batch step itself
    (``exec``), so ``scancel --batch`` signals the supervisor, which stops the run's
    process tree and records it as canceled."""
    env = dict(started.get("env") or {})
    lines = [
        "#!/bin/sh",
        f"# targets run {run_id}",
        'export TARGETS_USER_PYTHONPATH="${PYTHONPATH:-}"',
        *(f"export {name}={shlex.quote(str(value))}" for name, value in sorted(env.items())),
        # The first node of the job is the rendezvous of a torch.distributed run.
        'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" 2>/dev/null | head -n 1)',
        'export MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"',
        'export MASTER_PORT="${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}"',
        "exec " + shlex.join(str(a) for a in started["argv"]),
        "",
    ]
    return "\n".join(lines)


def combine(
    job_id: str, job_state: str | None, written: StatusRecord, job_log_tail: str = ""
) -> StatusRecord:
    """The run's status (in ``status.json``'s shape) from the job's state (``None``: Slurm
    no longer knows the job) and ``status.json`` as the supervisor wrote it.

    Ask Slurm *before* reading ``status.json``: a job ends only after its supervisor wrote
    the final status, so an ended job with an unfinished status file means the supervisor
    was stopped from outside (scancel, time limit, node failure)."""
    status = str(written.get("status", QUEUED_STATUS))
    state = (job_state or "").split()[0].rstrip("+") if job_state else None
    if state == "CANCELLED" and status != COMPLETED:
        # A scancel from outside targets signals every process of the job at once: the
        # script may die of the SIGTERM before its supervisor records a cancel.
        return {**written, "status": CANCELED, "message": f"Slurm job {job_id} was canceled"}
    if status in TERMINAL:
        if state in ("RUNNING", "COMPLETING"):
            # The supervisor has finished but Slurm has not ended the job yet: wait for
            # the job's final state (an outside scancel shows only there).
            return {**written, "status": FINALIZING}
        return {**written}
    if state in QUEUED:
        return {
            **written,
            "status": QUEUED_STATUS,
            "message": f"Slurm job {job_id} is {state.lower()}",
        }
    if state in ("RUNNING", "COMPLETING", "STOPPED", "SIGNALING"):
        return {**written, "status": PREPARING if status in (QUEUED_STATUS, UNKNOWN) else status}
    detail = f": {job_log_tail.strip()[-1000:]}" if job_log_tail.strip() else ""
    if state is None:
        message = f"Slurm no longer knows job {job_id} and the run did not finish{detail}"
    else:
        message = f"Slurm job {job_id} ended {state} before the run finished{detail}"
    return {**written, "status": FAILED, "message": message}


def job_state_command(job_id: str) -> str:
    """One shell command printing the job's state: from the controller (``squeue`` sees
    jobs that ended in the last ``MinJobAge`` seconds), else from accounting (``sacct``),
    else nothing."""
    q = shlex.quote(job_id)
    return (
        f"s=$(squeue -h -t all -j {q} -o %T 2>/dev/null | head -n 1); "
        f'[ -n "$s" ] || s=$(sacct -n -X -P -j {q} -o State 2>/dev/null | head -n 1); '
        'echo "$s"'
    )


def cancel_command(job_id: str) -> str:
    """Cancel a job: a job that has not started is removed from the queue; a running job's
    batch step (the supervisor) gets SIGTERM and stops the run gracefully."""
    q = shlex.quote(job_id)
    return (
        f"scancel -t PENDING {q} 2>/dev/null; scancel --batch --signal=TERM {q} 2>/dev/null; true"
    )
