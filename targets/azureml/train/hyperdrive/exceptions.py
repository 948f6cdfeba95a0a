"""``azureml.train.hyperdrive.exceptions``: what HyperDrive raises for bad input."""

from __future__ import annotations

from targets.errors import UsageError

__all__ = ["HyperDriveConfigException"]


class HyperDriveConfigException(UsageError):
    """A HyperDrive configuration (search space, sampling, policy, limits, goal) is
    invalid. Raised where v1 raises it: when the object is made, before anything is
    written or run. Exit code 2."""
