"""``azureml.core.compute_target``: :class:`ComputeTargetException`, what every refusal
of a compute-target call raises, as in Azure ML v1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from targets.errors import TargetsError

__all__ = ["ComputeTargetException", "translated"]


class ComputeTargetException(TargetsError):
    """A compute-target operation was refused or failed. It keeps the message, the hint
    and the exit code of the ``targets`` error it stands for (``cause``), so ``except
    ComputeTargetException`` works as in v1 and the text is the CLI's."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        exit_code: int = 1,
        cause: TargetsError | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code
        self.cause = cause

    @property
    def message_text(self) -> str:
        """v1's name for the message."""
        return str(self)

    @classmethod
    def of(cls, error: TargetsError) -> ComputeTargetException:
        if isinstance(error, ComputeTargetException):
            return error
        return cls(error.message, hint=error.hint, exit_code=error.exit_code, cause=error)


@contextmanager
def translated() -> Iterator[None]:
    """Raise every :class:`TargetsError` of the block as a ComputeTargetException."""
    try:
        yield
    except ComputeTargetException:
        raise
    except TargetsError as exc:
        raise ComputeTargetException.of(exc) from exc
