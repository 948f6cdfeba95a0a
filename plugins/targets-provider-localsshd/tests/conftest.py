"""The plugin's tests use only targets' public test helpers (``targets.testing``)."""

from targets.testing.ci_skips import (  # noqa: F401 - with CI set, a skip is a failure
    pytest_make_collect_report,
    pytest_runtest_makereport,
)
from targets.testing.fixtures import cli, isolated_home, project, write  # noqa: F401 - fixtures
