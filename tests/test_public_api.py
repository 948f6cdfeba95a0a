"""The public API is what plugin authors and users import: pin it, so a change is a decision."""

from __future__ import annotations

import targets
import targets.compute
import targets.errors


def test_targets_exports():
    assert targets.__all__ == [
        "Capability",
        "ComputeTarget",
        "CondaDependencies",
        "Environment",
        "Estimator",
        "Experiment",
        "Run",
        "RunConfiguration",
        "RunStatus",
        "ScriptRunConfig",
        "TargetsError",
        "Workspace",
        "__version__",
    ]
    for name in targets.__all__:
        assert getattr(targets, name) is not None


def test_compute_exports():
    assert sorted(targets.compute.__all__) == sorted(
        [
            "TERMINAL_STATUSES",
            "AgentClient",
            "AgentError",
            "AgentTarget",
            "Capability",
            "ComputeTarget",
            "LocalAgentClient",
            "LogChunk",
            "NoOptions",
            "Progress",
            "RunHandle",
            "RunState",
            "RunStatus",
            "SubmitRequest",
            "TargetContext",
            "VMOptions",
            "VMTarget",
            "state_from_status",
            "AgentHandleData",
            "HandleData",
            "agent_handle_data",
            "no_progress",
            "prepare_timeout",
        ]
    )
    for name in targets.compute.__all__:
        assert getattr(targets.compute, name) is not None


def test_every_error_is_a_targets_error_with_an_exit_code():
    for name in targets.errors.__all__:
        cls = getattr(targets.errors, name)
        assert issubclass(cls, targets.errors.TargetsError), name
        assert cls.exit_code in (1, 2), name
    assert issubclass(targets.errors.UsageError, targets.errors.TargetsError)
    assert targets.errors.ConfigError("x").exit_code == 2


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError):
        targets.NoSuchThing  # noqa: B018
