"""The studio's page of one run, in a real browser against a real `targets studio`: the
log arrives live and the status turns Completed without a reload; Cancel stops a run;
an output downloads; Submit again starts a new run that completes; the log stream
resumes at the byte it left (Last-Event-ID, ?offset) and never repeats a line; a 5 MB
log keeps the page's log element bounded; the download route refuses every path out of
the run's outputs and logs."""

from __future__ import annotations

import http.client
import json
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from targets.testing.fixtures import CLIResult
from tests.studio_browser import (
    Studio,
    browser_fixture,  # noqa: F401
    page_fixture,  # noqa: F401
    studio_fixture,  # noqa: F401
)

CLI = Callable[..., CLIResult]
WAIT = 60_000  # ms: what a slow CI machine may need for a run to start and end

SLOW = """\
import os, sys, time
go = sys.argv[1]
for i in range(3):
    print(f"tick {i}", flush=True)
    time.sleep(0.2)
while not os.path.exists(go):  # the test says when to go on: the run is open until then
    time.sleep(0.1)
os.makedirs("outputs", exist_ok=True)
with open("outputs/result.txt", "w") as fh:
    fh.write("result of the run\\n")
for i in range(3, 6):
    print(f"tick {i}", flush=True)
    time.sleep(0.2)
"""

FOREVER = """\
import time
for i in range(3000):
    print("alive", i, flush=True)
    time.sleep(0.1)
"""


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def submitted(cli: CLI, *args: str) -> str:
    """`targets run --detach ARGS`: the new run's id."""
    result = cli("run", "--detach", *args)
    assert result.code == 0, result
    return result.out.strip().splitlines()[-1]


def finished(cli: CLI, *args: str) -> str:
    """`targets run ARGS` to its end: the run's id."""
    result = cli("run", *args, timeout=300)
    assert result.code == 0, result
    return str(cli("runs", "list", "-o", "json").json()[0]["id"])  # type: ignore[index]


def status_of(cli: CLI, run_id: str) -> str:
    data = cli("runs", "show", run_id, "-o", "json").json()
    assert isinstance(data, dict)
    return str(data["status"])


def test_the_log_arrives_live_and_the_status_turns_completed_without_a_reload(
    project: Path, cli: CLI, studio: Studio, page: Any, tmp_path: Path
) -> None:
    (project / "slow.py").write_text(SLOW)
    go = tmp_path / "go"
    run_id = submitted(cli, "slow.py", "--", str(go))
    page.goto(f"{studio.base}/runs/{run_id}")
    page.evaluate("window.stillTheSamePage = true")
    log = page.locator("pre#log.log")
    expect(log).to_contain_text("tick 2", timeout=WAIT)
    expect(log).to_have_attribute("data-caught-up", "true")
    # The script waits for `go`: the run is still open while its lines are shown.
    expect(page.locator("#run-status")).to_have_text("Running")
    assert "tick 3" not in log.inner_text()
    go.touch()
    expect(log).to_contain_text("tick 5", timeout=WAIT)
    expect(page.locator("#run-status")).to_have_text("Completed", timeout=WAIT)
    expect(page.locator("#run-exit-code")).to_have_text("0")
    expect(page.locator("#log-state")).to_have_text("complete", timeout=WAIT)
    text = log.inner_text()
    assert [line for line in text.splitlines() if line.startswith("tick")] == [
        f"tick {i}" for i in range(6)
    ]
    # The outputs were listed again when the run ended.
    expect(page.locator("#outputs a[data-path='outputs/result.txt']")).to_be_visible(timeout=WAIT)
    expect(page.locator("#cancel-run")).to_be_hidden()
    assert page.evaluate("window.stillTheSamePage") is True


def test_cancel_from_the_page_stops_the_run(
    project: Path, cli: CLI, studio: Studio, page: Any
) -> None:
    (project / "forever.py").write_text(FOREVER)
    run_id = submitted(cli, "forever.py")
    page.goto(f"{studio.base}/runs/{run_id}")
    expect(page.locator("#log")).to_contain_text("alive 3", timeout=WAIT)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#cancel-run").click()
    expect(page.locator("#cancel-result")).to_contain_text("Canceled", timeout=WAIT)
    expect(page.locator("#run-status")).to_have_text("Canceled", timeout=WAIT)
    assert status_of(cli, run_id) == "Canceled"


def test_an_output_file_downloads_with_what_the_script_wrote(
    project: Path, cli: CLI, studio: Studio, page: Any
) -> None:
    content = "weights: 0.25, 0.75\nnaïve résumé ✓\n"
    (project / "write.py").write_text(
        "import os\nos.makedirs('outputs/model', exist_ok=True)\n"
        f"open('outputs/model/weights.txt', 'w', encoding='utf-8').write({content!r})\n"
    )
    run_id = finished(cli, "write.py")
    page.goto(f"{studio.base}/runs/{run_id}")
    link = page.locator("#outputs a[data-path='outputs/model/weights.txt']")
    expect(link).to_be_visible(timeout=WAIT)
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "weights.txt"
    assert Path(download.value.path()).read_text(encoding="utf-8") == content


def test_submit_again_opens_a_new_run_that_completes(
    project: Path, cli: CLI, studio: Studio, page: Any
) -> None:
    (project / "hello.py").write_text("print('hello from the run')\n")
    old = finished(cli, "hello.py")
    page.goto(f"{studio.base}/runs/{old}")
    page.locator("#submit-again").click()
    page.wait_for_url(re.compile(r"/runs/(?!" + re.escape(old) + r"$)[^/]+$"), timeout=WAIT)
    new = page.url.rsplit("/", 1)[1]
    assert new != old
    expect(page.locator("#run-status")).to_have_text("Completed", timeout=WAIT)
    expect(page.locator("#log")).to_contain_text("hello from the run", timeout=WAIT)
    assert status_of(cli, new) == "Completed"
    listed = cli("runs", "list", "-o", "json").json()
    assert isinstance(listed, list)
    assert sorted(r["id"] for r in listed) == sorted([old, new])


# -- the log stream itself ---------------------------------------------------------------


def sse(studio: Studio, path: str, last_id: str | None = None) -> list[tuple[str, str, Any]]:
    """The events of a stream that ends (an ended run's log): (event, id, data)."""
    headers = {"Cookie": f"{studio.cookie}={studio.token}"}
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    request = urllib.request.Request(studio.base + path, headers=headers)
    events: list[tuple[str, str, Any]] = []
    name, event_id, data = "message", "", []
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        for raw in answer:
            line = raw.decode("utf-8").rstrip("\n")
            if not line:
                if data:
                    events.append((name, event_id, json.loads("\n".join(data))))
                name, event_id, data = "message", "", []
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "id":
                event_id = value
            elif field == "data":
                data.append(value)
    return events


def texts(events: list[tuple[str, str, Any]]) -> str:
    return "".join(data["text"] for name, _, data in events if name == "log")


MULTIBYTE = """\
for i in range(6000):
    print(f"{i:05d} é€😀 naïve " + "ü" * 20, flush=(i % 500 == 0))
"""


def test_the_log_stream_resumes_where_it_left_and_repeats_nothing(
    project: Path, cli: CLI, studio: Studio
) -> None:
    (project / "many.py").write_text(MULTIBYTE)
    run_id = finished(cli, "many.py")
    raw = (project / ".targets" / "runs" / run_id / "driver.log").read_bytes()
    assert len(raw) > 300 * 1024  # several chunks, and more than the page's tail
    whole = raw.decode("utf-8")

    events = sse(studio, f"/runs/{run_id}/log/events?file=driver.log&offset=0")
    assert events[0][0] == "info" and events[0][2]["start"] == 0
    assert events[-1][0] == "caught-up" and events[-1][2]["ended"] is True
    logs = [(event_id, data["text"]) for name, event_id, data in events if name == "log"]
    assert len(logs) > 4
    sent = 0
    for event_id, text in logs:  # each id: the byte offset after its text (whole characters)
        sent += len(text.encode("utf-8"))
        assert int(event_id) == sent
        assert "\ufffd" not in text
    assert texts(events) == whole

    # A reconnect (EventSource sends the last id) wins over the page's ?offset.
    middle_id, _ = logs[len(logs) // 2]
    shown = raw[: int(middle_id)].decode("utf-8")
    resumed = sse(studio, f"/runs/{run_id}/log/events?offset=0", last_id=middle_id)
    assert shown + texts(resumed) == whole
    # A page opened again with ?offset continues there too.
    by_offset = sse(studio, f"/runs/{run_id}/log/events?file=driver.log&offset={middle_id}")
    assert shown + texts(by_offset) == whole

    # Without an offset: the last 256 KiB, from the start of a line.
    tail = sse(studio, f"/runs/{run_id}/log/events")
    info = tail[0][2]
    assert info["size"] == len(raw) and 0 < info["start"] <= len(raw) - 256 * 1024 + 4096
    assert raw[info["start"] - 1 : info["start"]] == b"\n"
    assert texts(tail) == raw[info["start"] :].decode("utf-8")


def test_a_5_mb_log_keeps_the_page_bounded(
    project: Path, cli: CLI, studio: Studio, page: Any
) -> None:
    (project / "big.py").write_text(
        "for i in range(50000):\n    print(f'line {i:06d} ' + 'x' * 90)\n"
    )
    run_id = finished(cli, "big.py")
    size = (project / ".targets" / "runs" / run_id / "driver.log").stat().st_size
    assert size > 5_000_000

    # From the start: 5 MB pass through the page, which keeps only the newest lines.
    page.goto(f"{studio.base}/runs/{run_id}?file=driver.log&offset=0")
    log = page.locator("#log")
    expect(log).to_have_attribute("data-caught-up", "true", timeout=WAIT)
    kept = page.evaluate("document.getElementById('log').textContent")
    assert len(kept) <= 600_000
    assert kept.endswith("line 049999 " + "x" * 90 + "\n")
    assert "line 000000" not in kept
    assert kept.startswith("line ")  # cut at a line's start
    expect(page.locator("#log-note")).to_contain_text("older lines are no longer shown")

    # Opened plainly: the last 256 KiB, and a note with a link to the whole log.
    page.goto(f"{studio.base}/runs/{run_id}")
    expect(log).to_have_attribute("data-caught-up", "true", timeout=WAIT)
    expect(page.locator("#log-note")).to_contain_text("showing the last 256.0 KiB of 4.9 MiB")
    kept = page.evaluate("document.getElementById('log').textContent")
    assert len(kept) <= 256 * 1024 and kept.startswith("line ")
    assert page.locator("#log-download").get_attribute("href") == (
        f"/runs/{run_id}/files/driver.log"
    )


def get(studio: Studio, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` exactly as written (no normalisation), with the access cookie."""
    conn = http.client.HTTPConnection("127.0.0.1", studio.port, timeout=30)
    conn.request("GET", path, headers={"Cookie": f"{studio.cookie}={studio.token}"})
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, body


def test_downloads_refuse_paths_out_of_the_runs_outputs_and_logs(
    project: Path, cli: CLI, studio: Studio
) -> None:
    (project / "out.py").write_text(
        "import os\nos.makedirs('outputs', exist_ok=True)\n"
        "open('outputs/real.txt', 'w').write('real')\nprint('wrote it')\n"
    )
    run_id = finished(cli, "out.py")
    folder = project / ".targets" / "runs" / run_id
    secret = project / "secret.txt"
    secret.write_text("not for the browser")
    (folder / "outputs" / "link.txt").symlink_to(secret)
    (folder / "outputs" / "linked-dir").symlink_to(project)

    status, headers, body = get(studio, f"/runs/{run_id}/files/outputs/real.txt")
    assert status == 200 and body == b"real"
    assert headers["content-disposition"].startswith("attachment")
    assert get(studio, f"/runs/{run_id}/files/driver.log")[0] == 200
    for path in (
        "../../../../etc/passwd",
        "outputs/../run.json",
        "outputs/%2e%2e/run.json",
        "outputs/..%2f..%2f..%2fsecret.txt",
        "%2Fetc%2Fpasswd",
        "run.json",
        "outputs",
        "outputs/",
        "outputs/link.txt",
        "outputs/linked-dir/secret.txt",
        "outputs/nothing.txt",
        ".collect.lock",
    ):
        status, _, body = get(studio, f"/runs/{run_id}/files/{path}")
        assert status == 404, path
        assert b"not for the browser" not in body
    # The log stream reads logs only.
    for name in ("../run.json", "outputs/real.txt", "/etc/passwd", "logs/../run.json"):
        assert get(studio, f"/runs/{run_id}/log/events?file={name}")[0] == 404, name
    # The outputs tree lists neither link.
    status, _, body = get(studio, f"/runs/{run_id}/outputs")
    assert status == 200
    assert b"real.txt" in body and b"link.txt" not in body and b"linked-dir" not in body
