"""The ``local`` target: this machine.

It uses the agent in-process: the same object store, environment cache and detached
supervisor that remote kinds drive over SSH, rooted at ``$TARGETS_HOME`` (default
``~/.targets``). Environments and snapshot objects are therefore shared by every project
of the user on this machine.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from targets.agent import ops
from targets.compute._agent import AgentClient, AgentTarget, LocalAgentClient
from targets.compute.base import Capability

__all__ = ["LocalTarget", "agent_root"]


def agent_root() -> Path:
    """Where the agent keeps objects, environments and runs on this machine."""
    return Path(os.environ.get("TARGETS_HOME") or Path.home() / ".targets")


class LocalTarget(AgentTarget):
    """Runs on this machine, detached from the client."""

    kind = "local"
    description = "this machine"
    capabilities = frozenset(
        {
            Capability.VIRTUALENV,
            Capability.CONDA,
            Capability.DOCKER,
            Capability.SPARK,
            Capability.CANCEL,
            Capability.LIVE_LOGS,
        }
    )
    default_python = sys.executable
    docker_driver = "sdk"

    @property
    def root(self) -> Path:
        return agent_root()

    def _connect_agent(self) -> AgentClient:
        return LocalAgentClient(self.root)

    def probe(self) -> dict[str, Any]:
        facts = ops.probe(str(self.root), sys.executable)
        facts["python"] = sys.executable
        return facts
