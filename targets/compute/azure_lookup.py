"""Azure Resource Manager lookups for kinds attached the Azure ML way (by workspace name
and resource group instead of a URL).

Credentials come from your ``az login`` (azure-identity's ``AzureCliCredential``), as with
Azure ML's CLI. The Resource Manager endpoint is ``https://management.azure.com``, or
``TARGETS_AZURE_RESOURCE_MANAGER`` for a sovereign cloud (or, in our tests, an emulator on
127.0.0.1).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from targets.errors import AuthenticationError, ConnectionFailed, MissingExtraError, UsageError

__all__ = ["resolve_databricks_host", "resource_manager"]

DEFAULT_ARM = "https://management.azure.com"


def resource_manager() -> str:
    return os.environ.get("TARGETS_AZURE_RESOURCE_MANAGER", DEFAULT_ARM).rstrip("/")


def _loopback(url: str) -> bool:
    return urlsplit(url).hostname in {"127.0.0.1", "localhost", "::1"}


def resolve_databricks_host(subscription: str | None, resource_group: str, name: str) -> str:
    """The URL of the Azure Databricks workspace ``name`` in ``resource_group``."""
    subscription = subscription or os.environ.get("AZURE_SUBSCRIPTION_ID")
    if not subscription:
        raise UsageError(
            "which Azure subscription holds the workspace?",
            hint="pass --subscription ID, or set AZURE_SUBSCRIPTION_ID",
        )
    try:
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
        )
        from azure.identity import AzureCliCredential, CredentialUnavailableError
        from azure.mgmt.databricks import AzureDatabricksManagementClient
    except ImportError as exc:
        raise MissingExtraError("azure-mgmt-databricks", "azure") from exc
    endpoint = resource_manager()
    client = AzureDatabricksManagementClient(
        AzureCliCredential(),
        subscription,
        base_url=endpoint,
        credential_scopes=[DEFAULT_ARM + "/.default"],
    )
    where = f"{name!r} in resource group {resource_group!r} (subscription {subscription})"
    try:
        # Plain http is allowed only for an endpoint on this machine (an emulator).
        workspace = client.workspaces.get(
            resource_group, name, enforce_https=not _loopback(endpoint)
        )
    except ResourceNotFoundError as exc:
        raise UsageError(
            f"no Azure Databricks workspace {where}: {exc.message}",
            hint="check the names with `az databricks workspace list`",
        ) from exc
    except (ClientAuthenticationError, CredentialUnavailableError) as exc:
        raise AuthenticationError(
            f"Azure refused the lookup of the Databricks workspace {where}: {exc}",
            hint="sign in with `az login` (and `az account set --subscription ...`)",
        ) from exc
    except ServiceRequestError as exc:
        raise ConnectionFailed(f"cannot reach Azure Resource Manager at {endpoint}: {exc}") from exc
    except HttpResponseError as exc:
        raise UsageError(
            f"Azure could not look up the Databricks workspace {where}: {exc.message}"
        ) from exc
    url = getattr(workspace, "workspace_url", None)
    if not url:
        raise UsageError(f"the Databricks workspace {where} has no URL yet (still deploying?)")
    scheme = "http" if _loopback("http://" + url) else "https"
    return f"{scheme}://{url}"
