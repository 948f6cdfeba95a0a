"""Attaching, changing and detaching compute targets: the library operations behind
``targets attach | detach`` (and the Python API's), with every rule inside.

- :func:`attach_target`: check the name and the kind, validate the options against the
  kind's options model, connect once (:meth:`~targets.compute.base.ComputeTarget.probe`),
  keep the secrets in the keyring and record the target in ``targets.yml``. Nothing is
  written or stored when a check or the probe fails.
- :func:`update_target`: change some options of an attached target; the same checks and
  a new probe.
- :func:`detach_target`: let the kind release what outlives a command
  (:meth:`~targets.compute.base.ComputeTarget.on_detach`), forget the target and its
  secrets. Its runs stay in the history.

Managed clusters are made, not attached: see :mod:`targets.clusters.lifecycle`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from targets.errors import TargetsError, UsageError
from targets.workspace import LOCAL, TargetRecord, Workspace, validate_target_name

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

    from targets.compute.base import ComputeTarget

__all__ = ["HostKeyPolicy", "attach_target", "detach_target", "options_error", "update_target"]

HostKeyPolicy = bool | Callable[[str, str, str], bool]
"""Whether an unknown SSH host key may be accepted: True, False, or a callable
``(host, key_type, fingerprint) -> bool`` that asks the user."""


def options_error(exc: ValidationError, what: str, *, skip: tuple[str, ...] = ()) -> UsageError:
    """A UsageError listing what pydantic refused, each field written as its option
    (``--ssh-port: ...``); ``skip`` leaves wrapping fields out of the names."""
    lines = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"] if p not in skip)
        lines.append(f"--{loc.replace('_', '-')}: {e['msg']}" if loc else e["msg"])
    return UsageError(f"invalid {what}:\n  " + "\n  ".join(lines))


def check_new_name(ws: Workspace, name: str, *, replace: bool = False, hint: str = "") -> None:
    """A name a new target may take: valid, not ``local``, not taken (unless ``replace``)."""
    validate_target_name(name)
    if name == LOCAL:
        raise UsageError("the name 'local' is reserved for this machine")
    if name in ws.targets() and not replace:
        raise UsageError(
            f"a target named {name!r} is already attached",
            hint=hint or f"targets detach {name}, or attach again with --force",
        )


def _validate(cls: type[ComputeTarget], kind: str, values: Mapping[str, Any]) -> BaseModel:
    from pydantic import ValidationError

    try:
        return cls.options_model.model_validate(dict(values))
    except ValidationError as exc:
        raise options_error(exc, f"options for kind {kind!r}") from None


def _check_secrets(cls: type[ComputeTarget], kind: str, secrets: Mapping[str, str]) -> None:
    unknown = sorted(set(secrets) - set(cls.secret_names))
    if unknown:
        raise UsageError(
            f"kind {kind!r} takes no secret {', '.join(map(repr, unknown))}",
            hint="its secrets: " + (", ".join(cls.secret_names) or "none"),
        )
    for secret_name, value in secrets.items():
        if not value:
            raise UsageError(f"the secret {secret_name!r} is empty")
    if secrets:
        from targets.secrets import check_backend

        check_backend()  # before connecting: nothing is sent when it cannot be stored


def _probe_and_save(
    ws: Workspace,
    name: str,
    kind: str,
    cls: type[ComputeTarget],
    options: BaseModel,
    secrets: Mapping[str, str],
    accept_host_key: HostKeyPolicy,
    attached_at: float | None = None,
) -> TargetRecord:
    probing = TargetRecord(name=name, kind=kind, secrets=tuple(sorted(secrets)))
    # workspace=None: the target is not attached (or not changed) yet, so no later
    # process may open it (no shared SSH connection for this probe).
    context = ws.context_for(
        probing, secret=secrets.get, accept_host_key=accept_host_key, workspace=None
    )
    with cls(name, options, context) as target:
        facts = target.probe()
    if secrets:
        from targets.secrets import set_secret

        for secret_name, value in secrets.items():
            set_secret(ws.secret_ref(name, secret_name), value)
    record = TargetRecord(
        name=name,
        kind=kind,
        options=options.model_dump(mode="json", exclude_defaults=True),
        facts=facts,
        attached_at=attached_at if attached_at is not None else time.time(),
        secrets=tuple(sorted(secrets)),
    )
    ws.save_target(record)
    return record


def attach_target(
    ws: Workspace,
    name: str,
    kind: str,
    options: Mapping[str, Any] | None = None,
    *,
    secrets: Mapping[str, str] | None = None,
    accept_host_key: HostKeyPolicy = False,
    replace: bool = False,
) -> TargetRecord:
    """Attach the target ``name`` of ``kind`` (a name or an alias) with ``options`` (field
    names of the kind's options model) and ``secrets`` (names in the kind's
    ``secret_names``, values kept in the keyring only). Connects once to probe it.

    Raises a UsageError (exit code 2) for a bad name, a taken name (unless ``replace``),
    a kind that is made rather than attached, or invalid options or secrets, before
    anything is sent or written.
    """
    from targets.registry import load_kind, resolve_kind_name

    secrets = dict(secrets or {})
    check_new_name(ws, name, replace=replace)
    kind = resolve_kind_name(kind)
    cls = load_kind(kind)
    if not cls.attachable:
        raise UsageError(
            f"a {kind} target is created, not attached",
            hint=f"targets create {name} --type {kind} ...",
        )
    validated = _validate(cls, kind, options or {})
    _check_secrets(cls, kind, secrets)
    return _probe_and_save(ws, name, kind, cls, validated, secrets, accept_host_key)


def update_target(
    ws: Workspace,
    name: str,
    changes: Mapping[str, Any],
    *,
    secrets: Mapping[str, str] | None = None,
    accept_host_key: HostKeyPolicy = False,
) -> TargetRecord:
    """Change options of the attached target ``name`` (a value None resets an option to
    its default) and optionally replace secrets; probe it again and record it. The
    secrets it had stay unless replaced. Same checks as :func:`attach_target`."""
    from targets.registry import load_kind

    record = ws.target_record(name)
    if name == LOCAL:
        raise UsageError("the target 'local' has no options to change")
    cls = load_kind(record.kind)
    if not cls.attachable:
        raise UsageError(
            f"{name!r} is a {record.kind} target: it is changed with `targets update`",
            hint=f"targets update {name} --max-nodes N ...",
        )
    if not changes and not secrets:
        raise UsageError("nothing to change", hint="give the options to change")
    values = dict(record.options)
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    validated = _validate(cls, record.kind, values)
    new_secrets = dict(secrets or {})
    _check_secrets(cls, record.kind, new_secrets)
    kept = {}
    for secret_name in record.secrets:
        if secret_name not in new_secrets:
            from targets.secrets import get_secret

            value = get_secret(ws.secret_ref(name, secret_name))
            if value:
                kept[secret_name] = value
    return _probe_and_save(
        ws,
        name,
        record.kind,
        cls,
        validated,
        {**kept, **new_secrets},
        accept_host_key,
        attached_at=record.attached_at,
    )


def detach_target(ws: Workspace, name: str) -> TargetRecord:
    """Forget the attached target ``name`` and its secrets; its runs stay in the history.
    The kind first releases what outlives a command (its shared connection). Returns the
    record that was removed."""
    record = ws.target_record(name)
    if name == LOCAL:
        raise UsageError("the target 'local' cannot be detached")
    try:
        target = ws.get_target(name)
    except TargetsError:
        target = None  # a broken plugin or stale options: nothing of it to release
    if target is not None:
        try:
            target.on_detach()
        except TargetsError:
            pass  # best effort: the target is forgotten all the same
        finally:
            target.close()
    record = ws.remove_target(name)
    if record.secrets:
        from targets.secrets import delete_secret

        for secret_name in record.secrets:
            delete_secret(ws.secret_ref(name, secret_name))
    return record
