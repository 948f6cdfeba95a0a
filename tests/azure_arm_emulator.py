"""A local emulator of the one Azure Resource Manager call the Databricks kind makes:
``GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Databricks/workspaces/
{name}`` (api-version as azure-mgmt-databricks sends it), with bearer-token checks and
ARM's error JSON. The real azure-mgmt-databricks client talks to it; a fake ``az`` on
PATH gives azure-identity's AzureCliCredential its token, so nothing leaves the machine.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["ArmEmulator", "fake_az"]

_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.Databricks/workspaces/(?P<name>[^/?]+)$"
)


class ArmEmulator:
    def __init__(self, token: str, workspaces: dict[tuple[str, str, str], str]) -> None:
        """``workspaces`` maps (subscription, resource group, name) -> workspace URL."""
        self.token = token
        self.workspaces = workspaces
        self.requests: list[str] = []
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                emulator.requests.append(self.path)
                path, _, query = self.path.partition("?")
                if "api-version=" not in query:
                    return self._send(
                        400,
                        {
                            "error": {
                                "code": "MissingApiVersionParameter",
                                "message": "api-version is required",
                            }
                        },
                    )
                if self.headers.get("Authorization") != f"Bearer {emulator.token}":
                    return self._send(
                        401,
                        {
                            "error": {
                                "code": "InvalidAuthenticationToken",
                                "message": "The access token is invalid.",
                            }
                        },
                    )
                found = _PATH.match(path)
                key = (found["sub"], found["rg"], found["name"]) if found else None
                if key is None or key not in emulator.workspaces:
                    return self._send(
                        404,
                        {
                            "error": {
                                "code": "ResourceNotFound",
                                "message": f"The Resource 'Microsoft.Databricks/workspaces/"
                                f"{found['name'] if found else '?'}' under resource group "
                                f"'{found['rg'] if found else '?'}' was not found.",
                            }
                        },
                    )
                sub, _rg, name = key
                return self._send(
                    200,
                    {
                        "id": path,
                        "name": name,
                        "type": "Microsoft.Databricks/workspaces",
                        "location": "westeurope",
                        "properties": {
                            "workspaceUrl": emulator.workspaces[key],
                            "managedResourceGroupId": f"/subscriptions/{sub}/"
                            f"resourceGroups/databricks-rg-{name}",
                            "provisioningState": "Succeeded",
                        },
                    },
                )

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ArmEmulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def fake_az(folder: Path, token: str | None) -> Path:
    """An ``az`` that answers ``az account get-access-token`` as the real one does after
    ``az login`` (or, with ``token=None``, as it does before)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "az"
    if token is None:
        body = "echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n"
    else:
        answer = json.dumps(
            {
                "accessToken": token,
                "expiresOn": "2099-01-01 00:00:00.000000",
                "expires_on": 4070908800,
                "subscription": "sub",
                "tenant": "tenant",
                "tokenType": "Bearer",
            }
        )
        body = f"cat <<'JSON'\n{answer}\nJSON\n"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return folder
