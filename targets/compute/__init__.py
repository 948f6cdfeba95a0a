"""The plugin contract: what a target kind implements. See :mod:`targets.compute.base`.

Besides the contract, plugin kinds may build on two of the built-in kinds' bases:

- :class:`AgentTarget`, a kind whose work on the target is done by the agent (object
  store, environment cache, run supervisor): a kind implements
  :meth:`AgentTarget.connect_agent` (return an :class:`AgentClient`); its
  :meth:`AgentTarget.start_run` hook lets a kind hand the run's supervisor to a scheduler
  instead of launching it detached (:meth:`AgentClient.start_external`). What crosses the
  wire is typed in :mod:`targets.agent.protocol`; :func:`agent_handle_data` is the typed
  view of such a kind's :attr:`RunHandle.data`;
- :class:`VMTarget` and :class:`VMOptions`, a Linux machine over SSH (the agent shipped
  to ``~/.targets``, SSH host keys checked, :meth:`VMTarget.run_command` for commands of
  one's own, through the target's shared SSH connection).

They are loaded on first use, so importing this package stays cheap. :func:`no_progress`
is the default ``progress`` of ``submit``; :func:`prepare_timeout` the seconds environment
preparation may take (``TARGETS_PREPARE_TIMEOUT``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from targets._lazy import lazy_exports
from targets.compute.base import (
    TERMINAL_STATUSES,
    Capability,
    ComputeTarget,
    HandleData,
    LogChunk,
    NoOptions,
    Progress,
    RunHandle,
    RunState,
    RunStatus,
    SubmitRequest,
    TargetContext,
    no_progress,
)

if TYPE_CHECKING:
    from targets.compute._agent import (
        AgentClient,
        AgentError,
        AgentHandleData,
        AgentTarget,
        LocalAgentClient,
        agent_handle_data,
        prepare_timeout,
        state_from_status,
    )
    from targets.compute.vm import VMOptions, VMTarget

__all__ = [
    "TERMINAL_STATUSES",
    "AgentClient",
    "AgentError",
    "AgentHandleData",
    "AgentTarget",
    "Capability",
    "ComputeTarget",
    "HandleData",
    "LocalAgentClient",
    "LogChunk",
    "NoOptions",
    "Progress",
    "RunHandle",
    "RunState",
    "RunStatus",
    "SubmitRequest",
    "TargetContext",
    "VMOptions",
    "VMTarget",
    "agent_handle_data",
    "no_progress",
    "prepare_timeout",
    "state_from_status",
]

_LAZY = {
    "AgentClient": "targets.compute._agent",
    "AgentError": "targets.compute._agent",
    "AgentHandleData": "targets.compute._agent",
    "AgentTarget": "targets.compute._agent",
    "LocalAgentClient": "targets.compute._agent",
    "agent_handle_data": "targets.compute._agent",
    "prepare_timeout": "targets.compute._agent",
    "state_from_status": "targets.compute._agent",
    "VMOptions": "targets.compute.vm",
    "VMTarget": "targets.compute.vm",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
