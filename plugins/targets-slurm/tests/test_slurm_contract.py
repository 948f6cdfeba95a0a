"""The slurm kind passes the contract suite every built-in kind passes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from targets_slurm import SlurmTarget

from targets.testing import ComputeTargetContract


class TestSlurmContract(ComputeTargetContract):
    run_timeout = 180

    @pytest.fixture
    def target(self, slurm_target: SlurmTarget) -> Iterator[SlurmTarget]:
        yield slurm_target
