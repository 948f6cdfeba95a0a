"""The contract suite every target kind passes, and the helpers it drives runs with.

A plugin author runs the suite against their kind by subclassing
:class:`ComputeTargetContract` in a test module and providing a ``target`` fixture::

    import pytest
    from targets.testing import ComputeTargetContract

    class TestMyKindContract(ComputeTargetContract):
        @pytest.fixture
        def target(self, my_server):
            return MyKind("test-box", MyKind.options_model(address=my_server.address))

The built-in kinds run exactly this suite (``tests/test_contract_local.py``). It drives
the five primitives of :class:`targets.compute.ComputeTarget` directly, with real runs:
a kind passes when runs complete, fail, stream, return outputs and (if it declares
``Capability.CANCEL``) cancel the way users expect.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from targets.compute.base import (
    Capability,
    ComputeTarget,
    LogChunk,
    RunHandle,
    RunState,
    RunStatus,
    SubmitRequest,
)
from targets.errors import UnsupportedOperation
from targets.runconfig.model import RunConfiguration

__all__ = ["ComputeTargetContract", "collect_logs", "make_request", "wait_for_end"]


def make_request(
    source_dir: Path,
    *,
    script: str = "main.py",
    arguments: Sequence[str] = (),
    environment_variables: Mapping[str, str] | None = None,
    max_run_duration_seconds: int | None = None,
    config: RunConfiguration | None = None,
) -> SubmitRequest:
    """A SubmitRequest for the script ``script`` in ``source_dir`` (user-managed Python)."""
    from targets.environments import resolve_environment
    from targets.snapshot import take_snapshot

    if config is None:
        config = RunConfiguration(script=script, arguments=list(arguments))
        config.environment.python.user_managed_dependencies = True
        config.environment_variables = dict(environment_variables or {})
        config.max_run_duration_seconds = max_run_duration_seconds
    run_id = f"contract_{time.strftime('%Y%m%d_%H%M%S')}_{secrets.token_hex(3)}"
    return SubmitRequest(
        run_id=run_id,
        config=config,
        snapshot=take_snapshot(source_dir),
        environment=resolve_environment(config, source_dir),
    )


def wait_for_end(target: ComputeTarget, handle: RunHandle, timeout: float = 120) -> RunState:
    """Poll ``target.status`` until the run ends; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        state = target.status(handle)
        if state.status.terminal:
            return state
        if time.monotonic() > deadline:
            pytest.fail(f"run {handle.run_id} still {state.status} after {timeout}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def collect_logs(target: ComputeTarget, handle: RunHandle) -> dict[str, bytes]:
    """Every log file of a run, read through ``read_logs`` from offset 0."""
    offsets: dict[str, int] = {}
    data: dict[str, bytearray] = {}
    while True:
        chunks: list[LogChunk] = target.read_logs(handle, offsets)
        if not chunks:
            return {name: bytes(value) for name, value in data.items()}
        for chunk in chunks:
            assert chunk.offset == offsets.get(chunk.name, 0), "chunk does not start at offset"
            data.setdefault(chunk.name, bytearray()).extend(chunk.data)
            offsets[chunk.name] = chunk.offset + len(chunk.data)


class ComputeTargetContract:
    """The behaviour every target kind must have. Provide a ``target`` fixture."""

    #: Seconds a trivial run may take on this kind, before a test gives up.
    run_timeout: float = 120

    @pytest.fixture
    def target(self) -> Iterator[ComputeTarget]:  # pragma: no cover - plugins override
        raise NotImplementedError("provide a `target` fixture returning your kind")

    @pytest.fixture
    def source(self, tmp_path: Path) -> Path:
        src = tmp_path / "contract-src"
        src.mkdir()
        return src

    def _run(
        self, target: ComputeTarget, source: Path, code: str, **kwargs: object
    ) -> tuple[RunHandle, RunState]:
        (source / "main.py").write_text(code)
        request = make_request(source, **kwargs)  # type: ignore[arg-type]
        handle = target.submit(request)
        return handle, wait_for_end(target, handle, self.run_timeout)

    # -- declarations ------------------------------------------------------------------

    def test_declares_kind_capabilities_and_options(self, target: ComputeTarget) -> None:
        cls = type(target)
        assert isinstance(cls.kind, str) and cls.kind, "a kind has a name"
        assert all(isinstance(c, Capability) for c in cls.capabilities)
        assert issubclass(cls.options_model, BaseModel)
        assert cls.options_model.model_config.get("extra") == "forbid", (
            "an options model must forbid unknown keys so typos are errors"
        )
        with pytest.raises(ValidationError):
            cls.options_model.model_validate({"surely_not_an_option": 1})

    # -- runs --------------------------------------------------------------------------

    def test_completed_run_reports_exit_code_zero_and_its_output(
        self, target: ComputeTarget, source: Path
    ) -> None:
        handle, state = self._run(target, source, "print('contract says hello')\n")
        assert state.status is RunStatus.COMPLETED, state
        assert state.exit_code == 0
        logs = collect_logs(target, handle)
        assert b"contract says hello" in b"".join(logs.values())

    def test_failed_run_reports_its_exit_code(self, target: ComputeTarget, source: Path) -> None:
        _, state = self._run(target, source, "import sys\nsys.exit(5)\n")
        assert state.status is RunStatus.FAILED
        assert state.exit_code == 5

    def test_arguments_and_variables_arrive_verbatim(
        self, target: ComputeTarget, source: Path, tmp_path: Path
    ) -> None:
        args = ["a b", "it's", 'say "x"', "$(id)", ";", "*", "--k=v"]
        code = (
            "import json, os, sys\n"
            "print('ARGS=' + json.dumps(sys.argv[1:]))\n"
            "print('VAR=' + os.environ.get('CONTRACT_VAR', ''))\n"
        )
        handle, state = self._run(
            target, source, code, arguments=args, environment_variables={"CONTRACT_VAR": "v a l"}
        )
        assert state.status is RunStatus.COMPLETED, state
        text = b"".join(collect_logs(target, handle).values()).decode()
        line = next(x for x in text.splitlines() if x.startswith("ARGS="))
        assert json.loads(line[5:]) == args
        assert "VAR=v a l" in text

    def _run_command(
        self, target: ComputeTarget, source: Path, command: str | list[str]
    ) -> tuple[RunHandle, str]:
        (source / "README").write_text("a run of a command\n")
        config = RunConfiguration(command=command)
        config.environment.python.user_managed_dependencies = True
        config.environment_variables = {"CONTRACT_VAR": "v a l"}
        handle = target.submit(make_request(source, config=config))
        state = wait_for_end(target, handle, self.run_timeout)
        assert state.status is RunStatus.COMPLETED, state
        return handle, b"".join(collect_logs(target, handle).values()).decode()

    def test_a_list_command_runs_as_an_argv_without_a_shell(
        self, target: ComputeTarget, source: Path
    ) -> None:
        args = ["a b", "it's", 'say "x"', "$HOME", "$(id)", ";", "echo injected", "*", "--k=v"]
        code = "import json, sys; print('ARGV=' + json.dumps(sys.argv[1:]))"
        _, text = self._run_command(target, source, ["python3", "-c", code, *args])
        lines = [x for x in text.splitlines() if x.startswith("ARGV=")]
        assert lines, f"the command did not run as an argv; the run printed:\n{text}"
        assert json.loads(lines[0][5:]) == args
        assert "injected" not in text.replace("echo injected", "")

    def test_a_string_command_runs_through_the_shell(
        self, target: ComputeTarget, source: Path
    ) -> None:
        command = (
            'for w in "a b" c; do printf "[%s]" "$w"; done; echo " $CONTRACT_VAR" | tr a-z A-Z'
        )
        _, text = self._run_command(target, source, command)
        assert "[a b][c] V A L" in text.splitlines()

    def test_logs_resume_from_an_offset(self, target: ComputeTarget, source: Path) -> None:
        handle, _ = self._run(target, source, "print('0123456789')\n")
        full = collect_logs(target, handle)
        name = next(n for n, data in full.items() if b"0123456789" in data)
        start = full[name].index(b"0123456789") + 5
        rest = target.read_logs(handle, {name: start})
        mine = [c for c in rest if c.name == name]
        assert mine and mine[0].offset == start
        assert b"".join(c.data for c in mine) == full[name][start:]

    def test_wait_news_ends_with_complete_logs(self, target: ComputeTarget, source: Path) -> None:
        """A kind that waits (``wait_news`` not None) reports the end, as ``status`` does,
        only with its logs complete: following its answers alone yields the whole output."""
        (source / "main.py").write_text("print('waited for')\n")
        handle = target.submit(make_request(source))
        offsets: dict[str, int] = {}
        data: dict[str, bytes] = {}
        known: str | None = None
        deadline = time.monotonic() + self.run_timeout
        while True:
            got = target.wait_news(handle, offsets, known, 1.0)
            if got is None:  # this kind is polled instead: the other tests cover it
                wait_for_end(target, handle, self.run_timeout)
                return
            state, chunks = got
            for chunk in chunks:
                assert chunk.offset == offsets.get(chunk.name, 0)
                offsets[chunk.name] = chunk.offset + len(chunk.data)
                data[chunk.name] = data.get(chunk.name, b"") + chunk.data
            known = state.status.value
            if state.status.terminal:
                break
            assert time.monotonic() < deadline, f"run {handle.run_id} still {known}"
        assert state.status is RunStatus.COMPLETED, state
        assert b"waited for" in b"".join(data.values())

    def test_outputs_and_logs_come_back_also_after_a_failure(
        self, target: ComputeTarget, source: Path, tmp_path: Path
    ) -> None:
        code = (
            "import os, sys\nos.makedirs('outputs/sub', exist_ok=True)\n"
            "open('outputs/sub/result.txt', 'w').write('42')\n"
            "os.makedirs('logs', exist_ok=True)\nopen('logs/mine.log', 'w').write('log')\n"
            "sys.exit(1)\n"
        )
        handle, state = self._run(target, source, code)
        assert state.status is RunStatus.FAILED
        dest = tmp_path / "fetched"
        target.fetch_outputs(handle, dest)
        target.fetch_outputs(handle, dest)  # idempotent
        assert (dest / "outputs" / "sub" / "result.txt").read_text() == "42"
        assert (dest / "logs" / "mine.log").read_text() == "log"

    def test_a_handle_works_after_a_json_round_trip(
        self, target: ComputeTarget, source: Path
    ) -> None:
        handle, state = self._run(target, source, "print('x')\n")
        again = RunHandle.from_json(json.loads(json.dumps(handle.to_json())))
        fresh = type(target)(target.name, target.options, target.context)
        try:
            assert fresh.status(again).status is state.status
        finally:
            fresh.close()

    def test_max_run_duration_is_enforced(self, target: ComputeTarget, source: Path) -> None:
        code = "import time\nprint('sleeping', flush=True)\ntime.sleep(300)\n"
        _handle, state = self._run(target, source, code, max_run_duration_seconds=2)
        assert state.status is RunStatus.FAILED
        assert "max_run_duration" in (state.message or "")

    def test_cancel(self, target: ComputeTarget, source: Path) -> None:
        (source / "main.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(300)\n")
        handle = target.submit(make_request(source))
        if Capability.CANCEL not in target.capabilities:
            with pytest.raises(UnsupportedOperation):
                target.cancel(handle)
            return
        deadline = time.monotonic() + self.run_timeout
        while target.status(handle).status is not RunStatus.RUNNING:
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        target.cancel(handle)
        state = wait_for_end(target, handle, 60)
        assert state.status is RunStatus.CANCELED
        target.cancel(handle)  # idempotent
        assert target.status(handle).status is RunStatus.CANCELED
