"""Azure ML's curated environments (``AzureML-Minimal``, ``AzureML-Tutorial``,
``AzureML-PyTorch-1.5-CPU``, ``AzureML-sklearn-1.5``, ...) for the v1 front end.

A thin front end over :mod:`targets.curated`, the one catalogue that v2 jobs use too:
``Environment.get(ws, "AzureML-Minimal")`` resolves a name there when the workspace has
no registered environment of that name. A name with the reserved prefix that is not in
the catalogue is an error listing the known ones.

Design choice: only the conda specification is kept. The images that back the curated
environments in Azure (``mcr.microsoft.com/azureml/...``) are not used, so a curated
environment runs in the target's own Python tooling like any other conda specification.
"""

from __future__ import annotations

from targets.curated import (
    RESERVED_PREFIXES,
    CuratedEnvironment,
    curated,
    curated_names,
    find_curated,
    is_reserved_name,
    unknown_curated,
)

__all__ = [
    "RESERVED_PREFIXES",
    "CuratedEnvironment",
    "curated",
    "curated_names",
    "find_curated",
    "is_reserved_name",
    "unknown_curated",
]
