"""With ``CI`` set, no skip passes unseen (targets.testing.ci_skips); locally, skips still skip.

Each case runs a real pytest session on a small test file, with and without ``CI``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CASES = {
    "module-importorskip": """
        import pytest
        pytest.importorskip("a_module_that_is_not_installed_anywhere")

        def test_uses_it():
            pass
        """,
    "skipif-marker": """
        import pytest

        @pytest.mark.skipif(True, reason="mpirun is not installed")
        def test_mpi():
            pass
        """,
    "skip-in-a-fixture": """
        import pytest

        @pytest.fixture
        def service():
            pytest.skip("git is not installed")

        def test_git(service):
            pass
        """,
    "skip-in-the-test": """
        import pytest

        def test_ca_bundle():
            pytest.skip("this host has no CA bundle")
        """,
}


def run_pytest(tmp_path: Path, source: str, *, ci: bool) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_case.py"
    test.write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith("PYTEST_")}
    if ci:
        env["CI"] = "true"
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "targets.testing.ci_skips",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            "--rootdir",
            str(tmp_path),
            str(test),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_skip_fails_when_ci_is_set(tmp_path: Path, case: str) -> None:
    result = run_pytest(tmp_path, CASES[case], ci=True)
    # 1: a test failed; 2: collection failed (a test file that skips itself at import).
    assert result.returncode in (1, 2), result.stdout + result.stderr
    assert "CI is set, so this cannot be skipped" in result.stdout, result.stdout
    assert "skipped" not in result.stdout.splitlines()[-1], result.stdout


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_skip_still_skips_locally_with_its_reason(tmp_path: Path, case: str) -> None:
    result = run_pytest(tmp_path, CASES[case], ci=False)
    # 5: pytest ran no test (the only test file skipped itself at import).
    assert result.returncode in (0, 5), result.stdout + result.stderr
    assert "1 skipped" in result.stdout.splitlines()[-1], result.stdout


def test_an_expected_failure_is_not_turned_into_a_failure(tmp_path: Path) -> None:
    source = """
        import pytest

        @pytest.mark.xfail(reason="known bug", strict=True)
        def test_known():
            assert False

        def test_plain():
            pass
        """
    result = run_pytest(tmp_path, source, ci=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 xfailed" in result.stdout.splitlines()[-1], result.stdout
