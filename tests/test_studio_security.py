"""Who may talk to `targets studio`: the access token, the CSRF token, the Origin and Host
checks, and where it listens. Every test talks to a real `targets studio` process over
HTTP; the cross-origin tests drive a page of another origin in Chromium."""

from __future__ import annotations

import http.client
import http.server
import re
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.studio_browser import (
    Studio,
    browser_fixture,  # noqa: F401
    page_fixture,  # noqa: F401
    start_studio,
    studio_fixture,  # noqa: F401
)


def request(
    studio: Studio,
    method: str,
    path: str,
    *,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", studio.port, timeout=30)
    sent = dict(headers or {})
    if cookie is not None:
        sent["Cookie"] = f"{studio.cookie}={cookie}"
    conn.request(method, path, body=body, headers=sent)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_every_request_needs_the_access_token(studio: Studio) -> None:
    for path in ("/", "/runs", "/compute", "/static/studio.css", "/static/vendor/htmx-LICENSE.txt"):
        refused = request(studio, "GET", path)
        assert refused.status == 401, path
        wrong = request(studio, "GET", path, cookie="not-the-token")
        assert wrong.status == 401, path
    assert request(studio, "GET", "/runs?token=guess").status == 403
    assert request(studio, "GET", "/static/studio.css", cookie=studio.token).status == 200


def test_the_token_moves_from_the_url_into_a_strict_cookie(studio: Studio) -> None:
    answer = request(studio, "GET", f"/runs?token={studio.token}&page=2")
    assert answer.status == 303
    # Out of the address bar (and the history); the other parameters stay.
    assert answer.getheader("Location") == "/runs?page=2"
    cookie = answer.getheader("Set-Cookie") or ""
    assert cookie.startswith(f"{studio.cookie}={studio.token}")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    page = request(studio, "GET", "/runs", cookie=studio.token)
    assert page.getheader("Referrer-Policy") == "no-referrer"
    assert "script-src 'self'" in (page.getheader("Content-Security-Policy") or "")
    assert page.getheader("Cache-Control") == "no-store"


def test_changing_requests_need_the_csrf_token_and_the_studios_origin(
    studio: Studio, page: Any
) -> None:
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert csrf and csrf != studio.token
    own = f"http://127.0.0.1:{studio.port}"
    path = "/runs/no-such-run/cancel"
    no_csrf = request(studio, "POST", path, cookie=studio.token, headers={"Origin": own})
    assert no_csrf.status == 403
    wrong = request(
        studio, "POST", path, cookie=studio.token, headers={"Origin": own, "X-CSRF-Token": "x"}
    )
    assert wrong.status == 403
    other = request(
        studio,
        "POST",
        path,
        cookie=studio.token,
        headers={"Origin": "http://127.0.0.1:9", "X-CSRF-Token": csrf},
    )
    assert other.status == 403
    # With both, the request reaches the studio (which then says there is no such run).
    allowed = request(
        studio, "POST", path, cookie=studio.token, headers={"Origin": own, "X-CSRF-Token": csrf}
    )
    assert allowed.status not in (401, 403)


def test_another_host_name_is_refused(studio: Studio) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: refused."""
    answer = request(
        studio, "GET", "/runs", cookie=studio.token, headers={"Host": f"evil.test:{studio.port}"}
    )
    assert answer.status == 421
    named = request(
        studio, "GET", "/runs", cookie=studio.token, headers={"Host": f"localhost:{studio.port}"}
    )
    assert named.status == 200


@pytest.fixture
def other_origin() -> Iterator[Callable[[str], str]]:
    """``serve(html)``: a page on another loopback port (another origin, same site)."""
    pages: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def serve(html: str) -> str:
        pages["/evil.html"] = html.encode()
        return f"http://127.0.0.1:{server.server_address[1]}/evil.html"

    yield serve
    server.shutdown()
    server.server_close()


def _slow_run(cli: Callable[..., Any], project: Path) -> str:
    (project / "slow.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    result = cli("run", "slow.py", "--detach", "--output", "json")
    assert result.code == 0, result
    data = result.json()
    return str(data["run_id"] if "run_id" in data else data["id"])


def _status(cli: Callable[..., Any], run_id: str) -> str:
    return str(cli("runs", "show", run_id, "--output", "json").json()["status"])


def test_a_page_of_another_origin_cannot_cancel_a_run(
    studio: Studio,
    page: Any,
    browser: Any,
    other_origin: Callable[[str], str],
    cli: Callable[..., Any],
    project: Path,
) -> None:
    """The browser holds the studio's cookie (and a page on another port is the same
    *site*, so SameSite does not stop it): a form and a fetch from that page still cannot
    change anything."""
    run_id = _slow_run(cli, project)
    wait_until(lambda: _status(cli, run_id) == "Running", 60, "the run to start")
    target = f"http://127.0.0.1:{studio.port}/runs/{run_id}/cancel"
    evil = other_origin(
        textwrap.dedent(
            f"""\
            <!doctype html><body>
            <form id=f method=post action="{target}"><input name=x value=1></form>
            <script>
            fetch("{target}", {{method: "POST", credentials: "include", mode: "no-cors",
                                headers: {{"X-CSRF-Token": "guess"}}}})
              .finally(() => document.getElementById("f").submit());
            </script></body>
            """
        )
    )
    tab = page.context.new_page()  # same browser context: it has the studio's cookie
    tab.goto(evil)
    tab.wait_for_load_state("load")
    wait_until(lambda: "refused a request" in _text(tab), 20, "the refusal")
    time.sleep(1)
    assert _status(cli, run_id) == "Running"
    cli("runs", "cancel", run_id)


def _text(tab: Any) -> str:
    try:
        return str(tab.content())
    except Exception:  # navigating (the form's answer is arriving): look again
        return ""


def test_it_listens_on_loopback_only_by_default(studio: Studio) -> None:
    port = f"{studio.port:04X}"
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and local.endswith(":" + port):
                listening.append(local.split(":")[0])
    assert listening == ["0100007F"]  # 127.0.0.1, and nothing else
    assert studio.url.startswith(f"http://127.0.0.1:{studio.port}/?token=")


def test_a_host_beyond_loopback_needs_allow_remote(cli: Callable[..., Any], project: Path) -> None:
    result = cli("studio", "--host", "0.0.0.0", "--port", "0", "--no-browser", timeout=30)
    assert result.code == 2
    assert "--allow-remote" in result.err
    assert result.out == ""  # no URL: nothing was served


def test_allow_remote_warns(project: Path) -> None:
    server = start_studio(project, "--host", "0.0.0.0", "--allow-remote")
    try:
        assert server.url.startswith("http://0.0.0.0:")
    finally:
        err = server.stop()
    assert "warning" in err and "anyone who can reach it" in err


def test_a_taken_port_is_a_clear_error(studio: Studio, cli: Callable[..., Any]) -> None:
    result = cli("studio", "--port", str(studio.port), "--no-browser", timeout=30)
    assert result.code == 2
    assert f"cannot listen on 127.0.0.1:{studio.port}" in result.err
    assert "--port" in result.err


def test_without_the_extra_the_command_says_what_to_install(project: Path, tmp_path: Path) -> None:
    """A `targets` installed without `[studio]`: exit 2 and the pip command."""
    import subprocess

    blocker = tmp_path / "nostudio"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('starlette', 'uvicorn', 'jinja2'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "targets", "studio", "--no-browser", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "PYTHONPATH": str(blocker)},
    )
    assert proc.returncode == 2, proc
    assert "compute-targets[studio]" in proc.stderr


def test_no_asset_comes_from_another_host(studio: Studio) -> None:
    """It works without internet access: every script and stylesheet is served by the
    studio itself, and the vendored libraries carry their licences."""
    static = Path(__file__).resolve().parent.parent / "targets" / "studio"
    remote = re.compile(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", re.I)
    for template in (static / "templates").rglob("*.html"):
        assert not remote.search(template.read_text()), template
    for script in (static / "static").glob("*.js"):
        assert not re.search(r"""["'`](https?:)?//""", script.read_text()), script
    vendor = static / "static" / "vendor"
    names = {p.name for p in vendor.iterdir()}
    assert {"htmx-LICENSE.txt", "uPlot-LICENSE.txt"} <= names
    css = request(studio, "GET", "/static/vendor/uPlot-1.6.32.min.css", cookie=studio.token)
    assert css.status == 200
