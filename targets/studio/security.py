"""Who may talk to the studio: the access token, the CSRF token, the Origin and Host checks.

The studio serves one user's workspace, with that user's SSH keys and keyring behind it, so
every request must prove it comes from that user's browser:

- **Access token.** ``targets studio`` makes a random token and prints the URL with it
  (``/?token=...``). That request gets an HttpOnly, SameSite=Strict cookie and is
  redirected to the same page without the token (it leaves the address bar and the
  history). Every request, static files included, needs the cookie (or the token).
- **CSRF token.** A request that changes something (POST, PUT, PATCH, DELETE) also needs
  ``X-CSRF-Token`` (derived from the access token; the pages send it with every htmx
  request). A page of another site cannot read it.
- **Origin.** A changing request that carries an ``Origin`` (every browser sends one) must
  come from the studio's own origin.
- **Host.** The ``Host`` header must name the address the studio listens on, so a DNS
  rebinding page cannot reach it under another name.

This is a pure ASGI middleware, so streamed responses (server-sent events) pass through
untouched.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["CSRF_HEADER", "Access", "SecurityMiddleware", "new_token"]

CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)


def new_token() -> str:
    """A fresh access token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


class Access:
    """The tokens of one studio server and the names it may be reached by."""

    def __init__(self, token: str, hosts: Iterable[str], port: int) -> None:
        self.token = token
        self.csrf = hmac.new(token.encode(), b"targets-studio-csrf", hashlib.sha256).hexdigest()
        self.port = port
        self.cookie = f"targets_studio_{port}"
        """One cookie per port: several studios on one machine keep their own."""
        names = set()
        for host in hosts:
            bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
            names.add(f"{bracketed}:{port}")
            if port == 80:
                names.add(bracketed)
        self.hosts = frozenset(names)

    def token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())

    def origins(self) -> frozenset[str]:
        return frozenset(f"http://{h}" for h in self.hosts)


def _refuse(status: int, text: str) -> Response:
    return PlainTextResponse(text + "\n", status_code=status, headers={"Cache-Control": "no-store"})


class SecurityMiddleware:
    """Refuses what :class:`Access` does not allow (see the module doc) and adds the
    security headers (CSP, no sniffing, no referrer) to every response."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._check(scope)
        if isinstance(refusal, Response):
            await refusal(scope, receive, self._with_headers(send))
            return
        await self.app(scope, receive, self._with_headers(send))

    def _check(self, scope: Scope) -> Response | None:
        access = self.access
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if host not in access.hosts:
            return _refuse(
                421, f"the studio answers to {', '.join(sorted(access.hosts))} only, not {host!r}"
            )
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        given = query.get("token")
        if given is not None:
            if not access.token_ok(given):
                return _refuse(403, "wrong access token: open the URL `targets studio` printed")
            if scope["method"] in _SAFE_METHODS:
                # Into the cookie, out of the address bar and the browser's history.
                rest = {k: v for k, v in query.items() if k != "token"}
                location = scope.get("path", "/") + (f"?{urlencode(rest)}" if rest else "")
                response = RedirectResponse(location, status_code=303)
                response.set_cookie(
                    access.cookie, access.token, httponly=True, samesite="strict", path="/"
                )
                return response
        else:
            cookies = SimpleCookie()
            try:
                cookies.load(headers.get("cookie", ""))
            except Exception:  # a malformed Cookie header: as if none
                cookies = SimpleCookie()
            morsel = cookies.get(access.cookie)
            if not access.token_ok(morsel.value if morsel is not None else None):
                return _refuse(
                    401,
                    "the studio needs its access token: open the URL `targets studio` printed "
                    "(it ends in ?token=...)",
                )
        if scope["method"] not in _SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and origin not in access.origins():
                return _refuse(403, f"refused a request from another origin ({origin})")
            if not access.csrf_ok(headers.get(CSRF_HEADER)):
                return _refuse(
                    403, f"missing or wrong {CSRF_HEADER}: reload the page and try again"
                )
        return None

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def wrapped(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = {
                    b"content-security-policy": _CSP.encode(),
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"no-referrer",
                    b"x-frame-options": b"DENY",
                }
                headers += [(k, v) for k, v in extra.items() if k not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped
