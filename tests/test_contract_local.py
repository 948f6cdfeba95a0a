"""The built-in local kind passes the same contract suite plugin authors run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from targets.compute.local import LocalTarget
from targets.testing import ComputeTargetContract


class TestLocalContract(ComputeTargetContract):
    @pytest.fixture
    def target(self) -> Iterator[LocalTarget]:
        with LocalTarget("local") as target:
            yield target
