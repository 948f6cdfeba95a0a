"""Making a cluster: the checks of its settings, its provider instance, its record in the
workspace, and the steps of creating one (used by :mod:`targets.clusters.lifecycle`
and by run-based compute alike)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from targets.clusters.keys import SECRET_NAME, generate_key_pair, public_key_of
from targets.clusters.model import ClusterSpec
from targets.clusters.provider import NodeProvider, ProviderContext, load_provider
from targets.clusters.state import cluster_dir

if TYPE_CHECKING:
    from targets.workspace import TargetRecord, Workspace

__all__ = [
    "CLUSTER_KIND",
    "check_cluster_spec",
    "cluster_record",
    "make_provider",
    "provision",
]

CLUSTER_KIND = "cluster"
"""The kind name of managed clusters (:class:`targets.clusters.target.ClusterTarget`)."""


def check_cluster_spec(spec: ClusterSpec) -> type[NodeProvider]:
    """Refuse settings the cluster's provider cannot make (a UsageError, exit code 2):
    options its options model refuses, low-priority nodes from a provider without them.
    Returns the provider's class. Does no I/O beyond importing the provider."""
    from pydantic import ValidationError

    from targets.attachment import options_error
    from targets.errors import UsageError

    cls = load_provider(spec.provider)
    try:
        cls.options_model.model_validate(dict(spec.provider_options))
    except ValidationError as exc:
        raise options_error(exc, f"options for the {cls.name} provider") from None
    if spec.vm_priority == "lowpriority" and not cls.supports_low_priority:
        raise UsageError(
            f"the {cls.name} provider has no low-priority nodes",
            hint="leave out --vm-priority lowpriority (vm_priority: dedicated)",
        )
    return cls


def cluster_record(
    name: str,
    spec: ClusterSpec,
    facts: Mapping[str, Any],
    *,
    attached_at: float | None = None,
    secrets: tuple[str, ...] = (SECRET_NAME,),
) -> TargetRecord:
    """The record of cluster ``name`` in ``targets.yml``: its settings (defaults left
    out), the facts, when it was made (now unless given), the names of its secrets."""
    from targets.workspace import TargetRecord

    return TargetRecord(
        name=name,
        kind=CLUSTER_KIND,
        options=spec.model_dump(mode="json", exclude_defaults=True),
        facts=dict(facts),
        attached_at=attached_at if attached_at is not None else time.time(),
        secrets=secrets,
    )


def make_provider(
    name: str,
    spec: ClusterSpec,
    cdir: Path,
    secret: Callable[[str], str | None],
    *,
    make_folder: bool = True,
) -> NodeProvider:
    """The provider of cluster ``name`` (folder ``cdir``), its options validated, its
    public key derived from the private one that ``secret`` gives. ``make_folder``
    False: write nothing yet (before the provider's check)."""
    cls = load_provider(spec.provider)
    options = cls.options_model.model_validate(dict(spec.provider_options))
    private = secret(SECRET_NAME)
    public = public_key_of(private, f"targets-cluster-{name}") if private else ""
    context = ProviderContext(
        state_dir=cdir / "provider",
        public_key=public,
        secret=secret,
        workspace_dir=cdir.parent.parent,
    )
    if make_folder:
        (cdir / "provider").mkdir(parents=True, exist_ok=True)
    return cls(name, spec, options, context)


def provision(
    ws: Workspace,
    name: str,
    spec: ClusterSpec,
    *,
    facts: dict[str, Any] | None = None,
    busy: AbstractContextManager[Any] | None = None,
) -> TargetRecord:
    """Create cluster ``name``: a key pair (the private half to the keyring only), the
    provider's check, what the provider makes, and the cluster's record in the workspace.
    A failed step leaves no secret and no record behind. ``busy`` wraps the provider's
    creation (a spinner). Settings the provider cannot make are refused first
    (:func:`check_cluster_spec`)."""
    from targets.secrets import delete_secret, set_secret

    check_cluster_spec(spec)

    keys = generate_key_pair(f"targets-cluster-{name}")
    cdir = cluster_dir(ws.dir, name)
    provider = make_provider(
        name,
        spec,
        cdir,
        lambda n: keys.private if n == SECRET_NAME else None,
        make_folder=False,
    )
    ref = ws.secret_ref(name, SECRET_NAME)
    try:
        provider.check()  # before anything is written
        ws.ensure()
        (cdir / "provider").mkdir(parents=True, exist_ok=True)
        set_secret(ref, keys.private)
        try:
            with busy or contextlib.nullcontext():
                provider.create_cluster()
        except BaseException:
            delete_secret(ref)
            raise
    finally:
        provider.close()
    record = cluster_record(
        name, spec, {"provider": spec.provider, "public_key": keys.public, **(facts or {})}
    )
    ws.save_target(record)
    return record
