"""Making a cluster: its provider instance, and the steps of creating one (used by
``targets create`` and by run-based compute alike)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from targets.clusters.keys import SECRET_NAME, generate_key_pair, public_key_of
from targets.clusters.model import ClusterSpec
from targets.clusters.provider import NodeProvider, ProviderContext, load_provider
from targets.clusters.state import cluster_dir

if TYPE_CHECKING:
    from targets.workspace import TargetRecord, Workspace

__all__ = ["make_provider", "provision"]


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
    creation (a spinner)."""
    from targets.secrets import delete_secret, set_secret
    from targets.workspace import TargetRecord

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
    record = TargetRecord(
        name=name,
        kind="cluster",
        options=spec.model_dump(mode="json", exclude_defaults=True),
        facts={"provider": spec.provider, "public_key": keys.public, **(facts or {})},
        attached_at=time.time(),
        secrets=(SECRET_NAME,),
    )
    ws.save_target(record)
    return record
