"""The studio's runs table (/runs) in Chromium: runs made by the real CLI and the Python
API with their statuses and tags, a detached run turning Completed without a reload,
filters, search and paging over a filled ledger (with and without JavaScript), and the
children of a pipeline folded under it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from targets.ledger import RunRecord
from targets.workspace import Workspace
from tests.studio_browser import (
    Studio,
    browser_fixture,  # noqa: F401
    page_fixture,  # noqa: F401
    studio_fixture,  # noqa: F401
)


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=20_000)  # a busy 2-CPU machine, not a goal
    return playwright_expect(locator)


def swapped(page: Any, action: Callable[[], object]) -> None:
    """Do ``action`` (a filter, a search, a page link) and wait until htmx has put the
    new table in place of the old one, so what follows reads the answer to it."""
    old = page.locator("#runs-table").element_handle()
    action()
    old.wait_for_element_state("hidden", timeout=20_000)  # detached: replaced


def row(page: Any, run_id: str) -> Any:
    return page.locator(f'#runs-table tr[data-run="{run_id}"]')


def shown_ids(page: Any) -> list[str]:
    ids: list[str] = page.locator("#runs-table tbody tr[data-run]").evaluate_all(
        "rows => rows.map(r => r.dataset.run)"
    )
    return ids


def run_ids(cli: Any) -> dict[str, str]:
    """Entry -> run id, from `targets runs list -o json`."""
    listed = cli("runs", "list", "--all", "-o", "json").json()
    return {r["entry"]: r["id"] for r in listed}


def test_runs_made_by_the_cli_and_the_api_show_with_status_and_tags(
    project: Path, cli: Any, write: Any, studio: Studio, page: Any
) -> None:
    write(project / "ok.py", 'print("fine")\n')
    write(project / "bad.py", "import sys\nsys.exit(3)\n")
    assert cli("run", "ok.py", "--name", "good one", "-e", "first").code == 0
    assert cli("run", "bad.py", "-e", "second").code == 1
    api = subprocess.run(
        [
            sys.executable,
            "-c",
            "from targets import Experiment, ScriptRunConfig, Workspace\n"
            "ws = Workspace('.')\n"
            "config = ScriptRunConfig(source_directory='.', script='ok.py')\n"
            "run = Experiment(ws, 'tagged').submit(config, tags={'team': 'vision', 'lr': '0.1'})\n"
            "run.wait_for_completion()\n"
            "print(run.id)\n",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert api.returncode == 0, api.stderr
    tagged = api.stdout.split()[-1]
    listed = cli("runs", "list", "-o", "json").json()
    by_experiment = {r["experiment"]: r["id"] for r in listed}

    page.goto(f"{studio.base}/runs")
    good = row(page, by_experiment["first"])
    expect(good.locator(".status")).to_have_text("Completed")
    expect(good.locator(".status")).to_have_class("status status-Completed")
    expect(good.locator("td.name")).to_have_text("good one")
    expect(good.locator("td.experiment")).to_have_text("first")
    expect(good.locator("td.target")).to_have_text("local")
    expect(good.locator("td.entry")).to_contain_text("ok.py")
    assert good.locator("td.duration").inner_text() not in ("", "-")
    link = good.locator("td.run-id a").first
    assert link.get_attribute("href") == f"/runs/{by_experiment['first']}"
    bad = row(page, by_experiment["second"])
    expect(bad.locator(".status")).to_have_text("Failed")
    expect(bad.locator("td.entry")).to_contain_text("bad.py")
    expect(row(page, tagged).locator("td.tags .tag")).to_have_text(["lr=0.1", "team=vision"])
    assert shown_ids(page) == [r["id"] for r in listed]  # newest first, as the CLI lists


def test_a_detached_run_turns_completed_on_the_open_page_without_a_reload(
    project: Path, cli: Any, write: Any, tmp_path: Path, page: Any, studio: Studio
) -> None:
    go = tmp_path / "go"
    write(
        project / "wait.py",
        "import pathlib, time\n"
        f"go = pathlib.Path({str(go)!r})\n"
        "for _ in range(1200):\n"
        "    if go.exists():\n"
        "        break\n"
        "    time.sleep(0.1)\n"
        "print('done waiting')\n",
    )
    page.goto(f"{studio.base}/runs")
    expect(page.locator("#runs-table .empty")).to_contain_text("No runs yet")
    page.evaluate("window.notReloaded = true")

    detached = cli("run", "wait.py", "--detach")
    assert detached.code == 0, detached
    (run_id,) = run_ids(cli).values()

    notice = page.locator("#runs-new")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("1 new run")
    notice.get_by_role("link", name="show").click()
    status = row(page, run_id).locator(".status")
    expect(status).to_be_visible()
    assert status.inner_text() in ("Queued", "Preparing", "Running")  # it waits for `go`
    expect(notice).to_be_hidden()
    page.evaluate("document.getElementById('runs-table').dataset.sameTable = 'yes'")

    go.write_text("go")
    expect(status).to_have_text("Completed", timeout=60_000)
    expect(status).to_have_class("status status-Completed")
    assert page.evaluate("window.notReloaded === true")
    assert page.evaluate("document.getElementById('runs-table').dataset.sameTable") == "yes"
    assert page.url == f"{studio.base}/runs"


def _fill(project: Path, count: int) -> list[RunRecord]:
    """``count`` runs inserted directly: experiments a/b/c, every 7th Failed, every 5th
    on target gpu, one minute apart (newest last); tags on the newest."""
    ws = Workspace(project)
    start = time.time() - count * 60
    records = [
        RunRecord(
            id=f"run_{i:05d}",
            experiment="abc"[i % 3],
            target="gpu" if i % 5 == 0 else "local",
            kind="local",
            status="Failed" if i % 7 == 0 else "Completed",
            created_at=start + i * 60,
            display_name=f"trial {i}",
            entry=f"train.py --seed {i}",
            started_at=start + i * 60 + 1,
            ended_at=start + i * 60 + 31,
            exit_code=1 if i % 7 == 0 else 0,
            collected=True,
        )
        for i in range(count)
    ]
    ws.ledger.insert_many(records)
    newest = ws.run_dir(records[-1].id)
    newest.mkdir(parents=True)
    (newest / "run.json").write_text(json.dumps({"origin": {"tags": {"owner": "ana"}}}))
    ws.close()
    return records


def test_filters_search_and_paging_give_the_right_rows(
    project: Path, studio: Studio, page: Any
) -> None:
    records = _fill(project, 130)
    newest_first = [r.id for r in reversed(records)]
    page.goto(f"{studio.base}/runs")
    expect(page.locator("#runs-table .summary")).to_contain_text("1 to 50 of 130 runs")
    assert shown_ids(page) == newest_first[:50]
    expect(row(page, records[-1].id).locator(".tag")).to_have_text("owner=ana")

    swapped(page, lambda: page.locator("nav.pager").get_by_role("link", name="Next").click())
    expect(page.locator("#runs-table .summary")).to_contain_text("51 to 100 of 130 runs")
    assert shown_ids(page) == newest_first[50:100]
    assert page.url.endswith("/runs?page=2")
    swapped(page, lambda: page.locator("nav.pager").get_by_role("link", name="Last").click())
    expect(page.locator("#runs-table .summary")).to_contain_text("101 to 130 of 130 runs")
    assert shown_ids(page) == newest_first[100:]
    swapped(page, page.go_back)
    expect(page.locator("#runs-table .summary")).to_contain_text("51 to 100 of 130 runs")

    swapped(page, lambda: page.locator("select[name=status]").select_option("Failed"))
    failed = [r.id for r in reversed(records) if r.status == "Failed"]
    expect(page.locator("#runs-table .summary")).to_contain_text(
        f"1 to {len(failed)} of {len(failed)}"
    )
    assert shown_ids(page) == failed
    assert "status=Failed" in page.url and "page=" not in page.url
    swapped(page, lambda: page.locator("select[name=experiment]").select_option("b"))
    wanted = [r.id for r in reversed(records) if r.status == "Failed" and r.experiment == "b"]
    expect(page.locator("#runs-table tbody tr")).to_have_count(len(wanted))
    assert shown_ids(page) == wanted
    for status in page.locator("#runs-table td.status-cell").all_inner_texts():
        assert status == "Failed"

    swapped(page, lambda: page.locator("select[name=status]").select_option(""))
    swapped(page, lambda: page.locator("select[name=experiment]").select_option(""))
    swapped(page, lambda: page.locator("select[name=target]").select_option("gpu"))
    on_gpu = [r.id for r in reversed(records) if r.target == "gpu"]
    expect(page.locator("#runs-table tbody tr")).to_have_count(len(on_gpu))
    assert shown_ids(page) == on_gpu

    swapped(page, lambda: page.locator("select[name=target]").select_option(""))
    # The entry, in any case: seeds 12 and 120-129.
    swapped(page, lambda: page.locator("#runs-q").fill("SEED 12"))
    matching = [r.id for r in reversed(records) if "seed 12" in (r.entry or "")]
    expect(page.locator("#runs-table tbody tr")).to_have_count(len(matching))
    assert shown_ids(page) == matching
    assert "q=SEED+12" in page.url
    swapped(page, lambda: page.locator("#runs-q").fill("trial 7"))  # names: 7, 70-79
    expect(page.locator("#runs-table tbody tr")).to_have_count(11)
    swapped(page, lambda: page.locator("#runs-q").fill("run_00042"))  # an id
    assert shown_ids(page) == ["run_00042"]
    swapped(page, lambda: page.locator("#runs-q").fill("100%_"))  # wildcards are text
    expect(page.locator("#runs-table .empty")).to_have_text("No runs match these filters.")

    # A listing's URL opened as is (a bookmark, a reload) shows the same rows.
    page.goto(f"{studio.base}/runs?status=Completed&page=2")
    completed = [r.id for r in reversed(records) if r.status == "Completed"]
    expect(page.locator("#runs-table .summary")).to_contain_text(f"51 to 100 of {len(completed)}")
    assert shown_ids(page) == completed[50:100]
    expect(page.locator("select[name=status]")).to_have_value("Completed")
    # A page beyond the last shows the last.
    page.goto(f"{studio.base}/runs?experiment=c&page=9")
    in_c = [r.id for r in reversed(records) if r.experiment == "c"]
    expect(page.locator("#runs-table .summary")).to_contain_text(f"1 to {len(in_c)} of {len(in_c)}")
    expect(page.locator("select[name=experiment]")).to_have_value("c")


def test_without_javascript_the_form_and_the_pager_still_work(
    project: Path, studio: Studio, browser: Any
) -> None:
    records = _fill(project, 120)
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(studio.url)  # the token becomes a cookie by a plain redirect
        expect(page.locator("#runs-table .summary")).to_contain_text("1 to 50 of 120 runs")
        page.locator("nav.pager").get_by_role("link", name="Next").click()
        expect(page.locator("#runs-table .summary")).to_contain_text("51 to 100 of 120 runs")
        page.locator("select[name=experiment]").select_option("a")
        page.locator("#runs-q").fill("seed 1")
        page.get_by_role("button", name="Filter").click()
        wanted = [
            r.id for r in reversed(records) if r.experiment == "a" and "seed 1" in (r.entry or "")
        ]
        expect(page.locator("#runs-table tbody tr")).to_have_count(len(wanted))
        assert shown_ids(page) == wanted
        assert "experiment=a" in page.url and "q=seed+1" in page.url
    finally:
        context.close()


def test_pipeline_steps_are_folded_under_their_parent(
    project: Path,
    cli: Any,
    write: Any,
    studio: Studio,
    page: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # images set aside
    write(project / "alone.py", 'print("alone")\n')
    write(
        project / "pipe.yml",
        "type: pipeline\n"
        "jobs:\n"
        "  first:\n"
        "    command: echo one\n"
        "    environment: {image: python:3.11}\n"
        "  second:\n"
        "    command: echo two\n"
        "    environment: {image: python:3.11}\n",
    )
    assert cli("run", "pipe.yml", timeout=300).code == 0
    assert cli("run", "alone.py").code == 0
    listed = cli("runs", "list", "--all", "-o", "json").json()
    (parent,) = [r for r in listed if r["parent_id"] is None and r["kind"] != "local"]
    steps = [r["id"] for r in listed if r["parent_id"] == parent["id"]]
    assert len(steps) == 2
    (alone,) = [r["id"] for r in listed if r["parent_id"] is None and r["kind"] == "local"]

    page.goto(f"{studio.base}/runs")
    assert shown_ids(page) == [alone, parent["id"]]  # top-level rows only
    toggle = row(page, parent["id"]).locator("a.kids")
    expect(toggle).to_have_text("2 child runs")
    toggle.click()
    children = page.locator(f'#runs-table tr.child[data-parent="{parent["id"]}"]')
    expect(children).to_have_count(2)
    # Right under the parent, oldest first, each with its status.
    assert shown_ids(page) == [alone, parent["id"], *steps]
    for step in steps:
        expect(row(page, step).locator(".status")).to_have_text("Completed")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    toggle.click()
    expect(children).to_have_count(0)
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(children).to_have_count(2)

    # A search finds a step by its id, and says whose step it is.
    swapped(page, lambda: page.locator("#runs-q").fill(steps[0]))
    expect(page.locator("#runs-table tbody tr")).to_have_count(1)
    expect(row(page, steps[0]).locator(".parent-of")).to_contain_text(parent["id"])

    # Without JavaScript the toggle is a link to the parent's children.
    page.goto(f"{studio.base}/runs?parent={parent['id']}")
    assert sorted(shown_ids(page)) == sorted(steps)
