"""The bindings of a ``type: parallel`` step, checked when the job is read: the reader
calls :func:`check_bindings`; :mod:`targets.jobs.parallel` (which runs the step) reads the
names with :func:`single_binding`. Kept apart so the reader does not import the runner."""

from __future__ import annotations

from targets.jobs.bindings import BindingError, KeyPath, check_command, references
from targets.jobs.model import ParallelNode

__all__ = ["check_bindings", "single_binding"]


def single_binding(text: str | None, scope: str) -> str | None:
    """The name in ``text`` when it is exactly ``${{<scope>.name}}``, else None."""
    if text is None:
        return None
    refs = references(text)
    if len(refs) == 1 and refs[0].scope == scope and text.strip() == refs[0].text:
        return refs[0].name
    return None


def check_bindings(node: ParallelNode, where: KeyPath = ()) -> None:
    """``input_data`` is ``${{inputs.x}}`` of a declared input, ``task.append_row_to``
    is ``${{outputs.y}}`` of a declared output, and ``task.program_arguments`` uses only
    declared names. Raises BindingError (exit 2) with the key path."""
    name = single_binding(node.input_data, "inputs")
    if name is None:
        raise BindingError(
            f"input_data must be ${{{{inputs.<name>}}}}, got {node.input_data!r}",
            (*where, "input_data"),
        )
    if name not in node.inputs:
        raise BindingError(
            f"input_data names no input of this step: {name!r} "
            f"(inputs: {', '.join(node.inputs) or 'none'})",
            (*where, "input_data"),
        )
    append = node.task.append_row_to
    if append is not None:
        out = single_binding(append, "outputs")
        if out is None or out not in node.outputs:
            raise BindingError(
                f"task.append_row_to must be ${{{{outputs.<name>}}}} of a declared output, "
                f"got {append!r} (outputs: {', '.join(node.outputs) or 'none'})",
                (*where, "task", "append_row_to"),
            )
    if node.task.program_arguments:
        check_command(
            node.task.program_arguments,
            inputs=node.inputs,
            outputs=node.outputs,
            keys=(*where, "task", "program_arguments"),
        )
