"""Hostile input to every reader ends in a result or exit 2 -- never a traceback, a hang or
unbounded memory (issue 13, defects 6 and 7, and the fuzz suite).

The first tests replay each defect through the real `targets` command. The fuzz tests
mutate the real files in ``tests/data/azureml-corpus`` (see ``tests/fuzz_readers.py``).

Profiles (env ``TARGETS_FUZZ``): ``bounded`` (the default, in `make test`: a fixed,
derandomised set of 400 inputs per reader, about a minute in all) and ``long`` (`make fuzz`:
``TARGETS_FUZZ_EXAMPLES`` inputs per reader, default 20000, random each time). Each
fuzz test prints how many inputs it tried and how they ended.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz_readers import (
    READERS,
    Tally,
    bounded,
    check,
    mutated,
    override_texts,
    read_override,
    seeds,
)

settings.register_profile(
    "bounded",
    max_examples=int(os.environ.get("TARGETS_FUZZ_EXAMPLES", "400")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("TARGETS_FUZZ_EXAMPLES", "20000")),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
PROFILE = settings.get_profile(os.environ.get("TARGETS_FUZZ", "bounded"))

TALLIES: dict[str, Tally] = {}


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    for name, tally in TALLIES.items():
        line = (
            f"fuzz {name}: {tally.tried} inputs tried, {tally.accepted} accepted, "
            f"{tally.refused} refused with exit 2, "
            f"{tally.tried - tally.accepted - tally.refused} other outcomes (failures)"
        )
        print(line)
        report = os.environ.get("TARGETS_FUZZ_REPORT")
        if report:
            with open(report, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")


# ----------------------------------------------------------------- the defects -------

ALIAS_BOMB = (
    "script: train.py\n"
    "environment:\n"
    "  databricks:\n"
    "    cluster:\n"
    "      a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"      a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 6))
)
"""9**6 = 531,441 strings from 400 bytes; 9 levels (the report's 1.2 KB file) would be
387 million. Six levels keep the test fast on the code before the fix, which accepted it."""

HOSTILE_RUNCONFIGS: dict[str, tuple[bytes, str]] = {
    "alias-bomb": (ALIAS_BOMB.encode(), "aliases expand to more than"),
    "alias-cycle": (b"script: train.py\narguments: &a [*a]\n", "refers to a node that contains"),
    "huge-int": (b"script: train.py\nnode_count: " + b"9" * 5000 + b"\n", "5000 digits"),
    "deep-nesting": (
        b"script: train.py\narguments: " + b"[" * 20000 + b"]" * 20000 + b"\n",
        "nested more than",
    ),
    "nul-character": (b"script: train.py\narguments: [a\x00b]\n", "'\\x00' is not allowed"),
    "nul-escape": (b'script: train.py\narguments: ["a\\0b"]\n', "NUL character"),
    "escape-past-unicode": (b'script: train.py\narguments: ["\\UFFFFFFFF"]\n', "invalid escape"),
    "escape-past-unicode-2": (
        b'script: train.py\narguments: ["\\U00110000"]\n',
        "invalid escape",
    ),
    "surrogate-escape": (b'script: train.py\narguments: ["\\uD800"]\n', "unpaired surrogate"),
    "not-utf8": (b"script: train.py\narguments: [\xff\xfe]\n", "not UTF-8"),
    "binary": (bytes(range(256)) * 4, "not UTF-8"),
    "huge-script-name": (b"script: " + b"a" * 5_000_000 + b"\n", "file too large"),
    "long-script-name": (b"script: " + b"a" * 300_000 + b"\n", "at most 4096"),
    "long-name-part": (b"script: " + b"a" * 300 + b".py\n", "more than 255 bytes"),
    "env-name-with-equals": (
        b"script: train.py\nenvironment_variables:\n  A=B: '1'\n",
        "contains '='",
    ),
    "v1-env-name-with-equals": (
        b"script: train.py\nenvironment:\n  environment_variables:\n    X=Y: '1'\n",
        "contains '='",
    ),
}


def _project(tmp_path: Path, name: str, data: bytes) -> Path:
    (tmp_path / "train.py").write_text("print('ran')\n")
    file = tmp_path / name
    file.write_bytes(data)
    return file


def _nothing_written(tmp_path: Path) -> None:
    runs = tmp_path / ".targets" / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "a run folder was created"


@pytest.mark.parametrize("case", sorted(HOSTILE_RUNCONFIGS))
def test_hostile_runconfig_is_refused_with_exit_2_by_validate(
    cli: Callable[..., Any], tmp_path: Path, case: str
) -> None:
    data, expected = HOSTILE_RUNCONFIGS[case]
    file = _project(tmp_path, "run.yml", data)
    result = cli("runconfig", "validate", str(file), cwd=tmp_path, timeout=60)
    assert result.code == 2, result.err[-2000:]
    assert expected in result.err
    assert "Traceback" not in result.err
    assert str(file) in result.err  # the error names the file


@pytest.mark.parametrize("case", sorted(HOSTILE_RUNCONFIGS))
def test_hostile_runconfig_is_refused_by_run_before_anything_is_written(
    cli: Callable[..., Any], tmp_path: Path, case: str
) -> None:
    data, expected = HOSTILE_RUNCONFIGS[case]
    file = _project(tmp_path, "run.yml", data)
    result = cli("run", str(file), cwd=tmp_path, timeout=60)
    assert result.code == 2, result.err[-2000:]
    assert expected in result.err
    assert "Traceback" not in result.err
    _nothing_written(tmp_path)


@pytest.mark.parametrize(
    "command", [("run",), ("runconfig", "validate"), ("job", "create", "--file")]
)
def test_file_name_no_system_call_can_take_is_refused_with_exit_2(
    cli: Callable[..., Any], tmp_path: Path, command: tuple[str, ...]
) -> None:
    result = cli(*command, "a" * 5000 + ".yml", cwd=tmp_path, timeout=60)
    assert result.code == 2, result.err[-2000:]
    assert "at most 4096" in result.err
    assert "Traceback" not in result.err
    _nothing_written(tmp_path)


def test_file_named_in_a_runconfig_with_a_name_too_long_is_refused(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    """Found by the fuzzer: a Workbench SparkDependenciesFile of 300 characters gave
    OSError (ENAMETOOLONG) from the lookup of the file."""
    (tmp_path / "aml_config").mkdir()
    file = _project(
        tmp_path,
        "aml_config/spark.runconfig",
        b'{"ArgumentVector": ["train.py"], "Target": "local", "Framework": "PySpark", '
        b'"SparkDependenciesFile": "' + b"s" * 300 + b'.yml"}',
    )
    result = cli("runconfig", "validate", str(file), cwd=tmp_path, timeout=60)
    assert result.code == 2, result.err[-2000:]
    assert "more than 255 bytes" in result.err
    assert "Traceback" not in result.err


HOSTILE_JOBS: dict[str, tuple[bytes, str]] = {
    "alias-bomb": (
        b"type: command\ncommand: echo hi\nenvironment_variables:\n"
        + ALIAS_BOMB.split("cluster:\n", 1)[1].replace("      ", "  ").encode(),
        "aliases expand to more than",
    ),
    "deep-nesting": (
        b"type: command\ncommand: echo hi\ninputs: " + b"{a: " * 20000 + b"1" + b"}" * 20000,
        "nested more than",
    ),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "not UTF-8"),
    "env-name-with-equals": (
        b"type: command\ncommand: echo hi\nenvironment: {image: python:3.11-slim}\n"
        b"environment_variables:\n  A=B: '1'\n",
        "or contains '='",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_JOBS))
def test_hostile_job_file_is_refused_by_run_with_exit_2(
    cli: Callable[..., Any], tmp_path: Path, case: str
) -> None:
    data, expected = HOSTILE_JOBS[case]
    file = _project(tmp_path, "job.yml", data)
    result = cli("run", str(file), cwd=tmp_path, timeout=60)
    assert result.code == 2, result.err[-2000:]
    assert expected in result.err
    assert "Traceback" not in result.err
    _nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[" * 20000 + "]" * 20000, "nested more than"),
        ("&a [*a]", "refers to a node that contains"),
    ],
)
def test_set_value_over_a_bound_is_refused_by_run(
    cli: Callable[..., Any], tmp_path: Path, value: str, expected: str
) -> None:
    job = _project(
        tmp_path,
        "job.yml",
        b"type: command\ncommand: echo ${{inputs.x}}\n"
        b"environment: {image: python:3.11-slim}\ninputs: {x: 1}\n",
    )
    result = cli("run", str(job), "--set", f"inputs.x={value}", cwd=tmp_path, timeout=60)
    assert result.code == 2, result.err[-2000:]
    assert "Traceback" not in result.err
    assert expected in result.err
    assert len(result.err) < 2000  # the huge value is not echoed in full
    _nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[" * 20000 + "]" * 20000, "nested more than"),
        ("&a [*a]", "refers to a node that contains"),
        ("&a [" + ", ".join(["x"] * 200) + "]\n", None),  # an ordinary list is fine
    ],
)
def test_set_value_over_a_bound_is_refused(value: str, expected: str | None) -> None:
    from targets.errors import ConfigError
    from targets.jobs.overrides import parse_override

    if expected is None:
        assert parse_override(f"inputs.x={value}")[1] == ["x"] * 200
        return
    with pytest.raises(ConfigError, match=expected) as info:
        parse_override(f"inputs.x={value}")
    assert len(str(info.value)) < 500  # the huge value is not echoed in full


def test_a_real_file_with_a_few_aliases_still_reads(tmp_path: Path) -> None:
    from targets.runconfig.io import load_runconfig

    file = _project(
        tmp_path,
        "run.yml",
        b"script: train.py\narguments: &args [--lr, '0.1']\n"
        b"environment_variables: &env {A: '1'}\n"
        b"environment:\n  environment_variables: *env\n",
    )
    loaded = load_runconfig(file, project_dir=tmp_path)
    assert loaded.config.arguments == ["--lr", "0.1"]
    assert loaded.config.environment.environment_variables == {"A": "1"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"script": "x.py", "environment_variables": {"A=B": "1"}}, "contains '='"),
        ({"script": "x.py", "environment_variables": {"A": "a\0b"}}, "NUL"),
        ({"script": "x.py", "arguments": ["a\0b"]}, "NUL"),
        ({"command": ["echo", "a\0b"]}, "NUL"),
        ({"script": "a" * 5000}, "at most 4096"),
    ],
)
def test_values_no_process_can_take_are_refused_from_python_too(
    fields: dict[str, Any], expected: str
) -> None:
    from pydantic import ValidationError

    from targets.runconfig.model import RunConfiguration

    with pytest.raises(ValidationError, match=expected):
        RunConfiguration(**fields)


# ----------------------------------------------------------------- the fuzz suite ----


def _tmp() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="fuzz-")


def _fuzz(kind: str) -> Callable[[], None]:
    tally = TALLIES.setdefault(kind, Tally())

    @PROFILE
    @given(data=mutated(kind))
    def run(data: bytes) -> None:
        with _tmp() as tmp:
            check(READERS[kind], data, Path(tmp), tally)

    return run


@pytest.mark.parametrize("kind", ["v1", "conda", "ours", "job"])
def test_fuzz_reader_ends_in_a_result_or_exit_2(kind: str) -> None:
    assert seeds(kind), f"no seed files for {kind} in tests/data/azureml-corpus"
    with bounded():
        _fuzz(kind)()


def test_fuzz_set_override_ends_in_a_result_or_exit_2() -> None:
    tally = TALLIES.setdefault("--set", Tally())

    @PROFILE
    @given(text=override_texts)
    def run(text: str) -> None:
        with _tmp() as tmp:
            check(read_override, text, Path(tmp), tally)

    with bounded():
        run()


@pytest.mark.parametrize("kind", ["v1", "conda", "ours", "job"])
def test_every_seed_file_reads_unchanged(kind: str) -> None:
    """The mutations start from files the readers accept or refuse cleanly."""
    tally = Tally()
    for data in seeds(kind):
        with _tmp() as tmp:
            check(READERS[kind], data, Path(tmp), tally)
    assert tally.tried == len(seeds(kind))
