"""CI sees every skip: with ``CI`` set, a skipped test or test file is reported as failed.

The rule: a test needing a service (sshd, Docker, mpirun, git, an optional SDK) may skip
locally with a reason, but must fail in CI, where ``make test`` installs everything. Each
such place says so itself (``skip_or_fail``); these hooks make the rule hold for every
``pytest.skip``, ``skipif`` marker and module-level ``pytest.importorskip`` as well, so a
new skip cannot hide from CI. An expected failure (``xfail``) stays what it is.

Loaded by the repository's ``tests/conftest.py``; a plugin's test suite loads it with
``-p targets.testing.ci_skips`` (or imports the two hooks into its own conftest).
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

__all__ = ["pytest_make_collect_report", "pytest_runtest_makereport"]

PREFIX = "CI is set, so this cannot be skipped: "


def _fail_if_ci(report: pytest.CollectReport | pytest.TestReport) -> None:
    if not os.environ.get("CI") or not report.skipped or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    report.outcome = "failed"
    report.longrepr = PREFIX + reason


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _fail_if_ci(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _fail_if_ci(report)
    return report
