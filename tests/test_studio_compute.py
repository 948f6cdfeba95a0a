"""The studio's compute pages in a real browser (Debian's Chromium through Playwright)
against a real ``targets studio``: the list of targets with their live status, attaching
the test sshd through the generated form (its host key shown and accepted), a refused
option with the CLI's message, and a docker-provider cluster created, scaled and deleted
from the browser. No secret typed into a form ever comes back in a page."""

from __future__ import annotations

import enum
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from targets.studio.forms import form_fields, form_values
from tests.cluster_nodes import NodeImage, node_image_fixture, remove_cluster_containers  # noqa: F401
from tests.dockerd import docker_engine_fixture  # noqa: F401
from tests.sshd import SSHServer, sshd_fixture, sshd_server_fixture  # noqa: F401
from tests.studio_browser import (  # noqa: F401
    Studio,
    browser_fixture,
    page_fixture,
    studio_fixture,
)


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


class Pages:
    """Every compute page and fragment the studio sent to the browser, as text."""

    def __init__(self, page: Any) -> None:
        self.bodies: list[str] = []
        page.context.route(re.compile(r".*/compute.*"), self._keep)

    def _keep(self, route: Any) -> None:
        from playwright.sync_api import Error

        try:
            response = route.fetch()
            self.bodies.append(response.text())
            route.fulfill(response=response)
        except Error:
            # The tab closed while a status poll was under way (the test is over).
            pass

    def containing(self, text: str) -> list[str]:
        return [b for b in self.bodies if text in b]


def fill_vm_form(page: Any, studio: Studio, sshd: SSHServer, name: str) -> None:
    """The attach form of the vm kind, reached from the compute page, filled with the test
    sshd's address, port and user."""
    page.goto(studio.base + "/compute")
    page.get_by_role("link", name="Attach a target").click()
    page.get_by_role("link", name="vm", exact=True).click()
    expect(page.get_by_role("heading", name="Attach a compute target")).to_be_visible()
    form = page.locator("#attach-form")
    form.locator("#name").fill(name)
    form.locator('[name="o.address"]').fill(sshd.host)
    form.locator('[name="o.ssh_port"]').fill(str(sshd.port))
    form.locator('[name="o.username"]').fill(sshd.user)


def accept_host_key(page: Any, sshd: SSHServer) -> None:
    """Attach, see the server's host key fingerprint, accept it."""
    page.get_by_role("button", name="Attach").click()
    prompt = page.locator("#attach-result .hostkey")
    expect(prompt).to_contain_text("can't be established")
    expect(prompt.locator(".fingerprint")).to_have_text(sshd.host_key_fingerprint())
    prompt.get_by_role("button", name="Accept this host key").click()


def listed(cli: Any) -> dict[str, dict[str, Any]]:
    result = cli("list", "-o", "json")
    assert result.code == 0, result
    return {t["name"]: t for t in result.json()}


def test_attach_a_vm_with_its_key_file_through_the_form(
    page: Any, studio: Studio, sshd: SSHServer, cli: Any
) -> None:
    fill_vm_form(page, studio, sshd, "dsvm")
    page.locator('[name="o.ssh_key"]').fill(str(sshd.key))
    accept_host_key(page, sshd)
    done = page.locator("#attach-result [data-attached]")
    expect(done).to_contain_text("attached dsvm (vm)")
    expect(done).to_contain_text("Debian")

    target = listed(cli)["dsvm"]
    assert target["type"] == "vm"
    assert target["options"]["address"] == sshd.host
    assert target["options"]["ssh_port"] == sshd.port
    assert target["options"]["ssh_key"] == str(sshd.key.resolve())
    assert target["facts"]["os"].startswith("Debian") and target["facts"]["cores"] >= 1

    # Its page: settings, what attach found (sizes as the CLI prints them), reachable.
    done.get_by_role("link", name="dsvm").click()
    expect(page.get_by_role("heading", name="dsvm")).to_be_visible()
    settings = page.locator("#settings")
    expect(settings).to_contain_text(sshd.host)
    expect(settings).to_contain_text(str(sshd.port))
    facts = page.locator("#facts")
    expect(facts).to_contain_text("Debian")
    expect(facts).to_contain_text(re.compile(r"memory\s*[\d.]+ GiB"))
    expect(page.locator("#status")).to_contain_text("reachable")


def test_a_password_is_kept_in_the_keyring_and_never_shown(
    page: Any, studio: Studio, sshd: SSHServer, cli: Any, project: Path
) -> None:
    pages = Pages(page)
    fill_vm_form(page, studio, sshd, "pwbox")
    page.locator('[name="s.password"]').fill(sshd.password)
    accept_host_key(page, sshd)
    expect(page.locator("#attach-result [data-attached]")).to_contain_text("attached pwbox")
    # The form forgot it once it was used.
    expect(page.locator('[name="s.password"]')).to_have_value("")

    target = listed(cli)["pwbox"]
    assert target.get("secrets") == ["password"], target
    page.goto(studio.base + "/compute/pwbox")
    expect(page.locator("#settings")).to_contain_text("password (in keyring)")
    expect(page.locator("#status")).to_contain_text("reachable")
    page.goto(studio.base + "/compute")
    expect(page.locator('tr[data-target="pwbox"] .status-cell')).to_contain_text("reachable")

    assert pages.bodies, "no compute page was seen"
    assert not pages.containing(sshd.password)
    assert sshd.password not in (project / ".targets" / "targets.yml").read_text()

    # Detach, confirmed in a dialog: the target and its secret are gone.
    page.goto(studio.base + "/compute/pwbox")
    asked: list[str] = []

    def confirm(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    page.get_by_role("button", name="Detach…").click()
    page.wait_for_url(studio.base + "/compute")
    assert asked and "Detach pwbox?" in asked[0]
    assert "pwbox" not in listed(cli)
    assert not pages.containing(sshd.password)
    assert sshd.password not in studio.stop()


def test_a_refused_option_shows_the_cli_message_and_attaches_nothing(
    page: Any, studio: Studio, sshd: SSHServer, cli: Any, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-key"
    by_cli = cli(
        "attach", "bad", "--address", sshd.host, "--ssh-port", str(sshd.port),
        "--ssh-key", str(missing),
    )  # fmt: skip
    assert by_cli.code == 2, by_cli
    message = f"--ssh-key: Value error, no key file at {missing}"
    assert message in by_cli.err

    fill_vm_form(page, studio, sshd, "bad")
    page.locator('[name="o.ssh_key"]').fill(str(missing))
    page.get_by_role("button", name="Attach").click()
    error = page.locator("#attach-result .error")
    expect(error).to_contain_text("invalid options for kind 'vm':")
    expect(error).to_contain_text(message)
    assert page.locator("#attach-result .hostkey").count() == 0
    assert set(listed(cli)) == {"local"}

    # A name the CLI refuses is refused the same way.
    page.locator("#name").fill("9lives")
    page.locator('[name="o.ssh_key"]').fill(str(sshd.key))
    page.get_by_role("button", name="Attach").click()
    by_cli = cli("attach", "9lives", "--address", sshd.host)
    assert by_cli.code == 2
    expect(error).to_contain_text("it must start with a letter")
    assert "it must start with a letter" in by_cli.err
    assert set(listed(cli)) == {"local"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_compute_page_lists_targets_and_their_status(
    page: Any, studio: Studio, sshd: SSHServer, cli: Any, project: Path
) -> None:
    for name in ("dsvm", "gone"):
        result = cli(
            "attach", name, "--address", sshd.host, "--ssh-port", str(sshd.port),
            "--username", sshd.user, "--ssh-key", str(sshd.key), "--accept-host-key",
        )  # fmt: skip
        assert result.code == 0, result
    # `gone`'s machine went away: nothing listens on its port any more.
    path = project / ".targets" / "targets.yml"
    data = yaml.safe_load(path.read_text())
    data["targets"]["gone"]["options"]["ssh_port"] = free_port()
    path.write_text(yaml.safe_dump(data))

    page.goto(studio.base + "/compute")
    rows = page.locator("#targets tbody tr")
    expect(rows).to_have_count(3)
    local = page.locator('tr[data-target="local"]')
    dsvm = page.locator('tr[data-target="dsvm"]')
    gone = page.locator('tr[data-target="gone"]')
    expect(local).to_contain_text("local")
    expect(dsvm).to_contain_text("vm")
    expect(dsvm.locator("td").nth(2)).to_have_text(sshd.host)
    expect(dsvm.locator(".facts-line")).to_contain_text("Debian")
    expect(dsvm.locator(".facts-line")).to_contain_text(re.compile(r"\d+ cores"))
    expect(dsvm.locator(".facts-line")).to_contain_text("GiB memory")
    expect(local.locator(".status-cell")).to_contain_text("reachable")
    expect(dsvm.locator(".status-cell")).to_contain_text("reachable")
    expect(gone.locator(".status-cell")).to_contain_text("unreachable")
    expect(gone.locator(".status-cell .reason")).not_to_be_empty()


@pytest.fixture
def cluster_name(node_image: NodeImage) -> Iterator[str]:
    name = "c" + uuid.uuid4().hex[:8]
    try:
        yield name
    finally:
        remove_cluster_containers(node_image.engine, name)


def node_containers(node_image: NodeImage, name: str) -> list[str]:
    out = node_image.engine.run(
        "ps", "-aq", "--filter", f"label=targets.cluster={name}", check=False
    ).stdout
    return out.split()


@pytest.mark.xdist_group("docker")
def test_create_scale_and_delete_a_docker_cluster_from_the_browser(
    page: Any, studio: Studio, node_image: NodeImage, cluster_name: str, cli: Any
) -> None:
    name = cluster_name
    page.goto(studio.base + "/compute")
    page.get_by_role("link", name="Create a cluster").click()
    page.get_by_role("link", name="docker", exact=True).click()
    form = page.locator("#create-form")
    form.locator("#name").fill(name)
    form.locator('[name="o.image"]').fill(node_image.name)
    # A setting the provider cannot make is refused with the CLI's message.
    form.locator('[name="c.max_nodes"]').fill("1")
    form.locator('[name="c.vm_priority"]').select_option("lowpriority")
    form.get_by_role("button", name="Create").click()
    result = page.locator("#create-result")
    expect(result.locator(".error")).to_contain_text("lowpriority")
    by_cli = cli(
        "create", name, "--type", "cluster", "--provider", "docker", "--max-nodes", "1",
        "--image", node_image.name, "--vm-priority", "lowpriority",
    )  # fmt: skip
    assert by_cli.code == 2 and "lowpriority" in by_cli.err
    assert name not in listed(cli)

    form.locator('[name="c.vm_priority"]').select_option("dedicated")
    form.locator('[name="c.min_nodes"]').fill("1")
    form.locator('[name="c.idle_seconds_before_scaledown"]').fill("60")
    form.get_by_role("button", name="Create").click()
    expect(result).to_contain_text(
        f"created cluster {name} (docker, 1-1 nodes, idle nodes removed after 60 s)",
        timeout=120_000,
    )
    created = listed(cli)[name]
    assert created["type"] == "cluster"
    assert created["options"]["provider_options"]["image"] == node_image.name

    # Its page: the node the cluster keeps comes up, live.
    result.get_by_role("link", name=f"open {name}").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    nodes = page.locator("#status table.nodes")
    expect(nodes).to_contain_text("running", timeout=120_000)
    expect(page.locator("#status")).to_contain_text("no run queued or running")
    expect(page.locator("#status table.events")).not_to_contain_text("none yet")

    # Scale settings: refused like the CLI refuses them, then changed.
    scale = page.locator("form.scale")
    scale.locator('[name="max_nodes"]').fill("0")
    scale.get_by_role("button", name="Update").click()
    expect(scale.locator("#scale-result .error")).to_contain_text("invalid cluster settings")
    scale.locator('[name="max_nodes"]').fill("2")
    scale.get_by_role("button", name="Update").click()
    expect(scale.locator("#scale-result")).to_contain_text(
        f"updated {name}: 1-2 nodes, idle nodes removed after 60 s"
    )
    shown = cli("show", name, "-o", "json").json()
    assert shown["options"]["max_nodes"] == 2

    # Delete, confirmed: its nodes go and the workspace forgets it.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete…").click()
    deleting = page.locator("#delete-result")
    expect(deleting).to_contain_text(f"deleted cluster {name}", timeout=120_000)
    assert name not in listed(cli)
    assert node_containers(node_image, name) == []
    deleting.get_by_role("link", name="back to the compute targets").click()
    expect(page.locator("#targets")).not_to_contain_text(name)


def test_a_plugin_kind_gets_its_attach_form(page: Any, studio: Studio) -> None:
    from targets.registry import available_kinds, load_kind

    kinds = {k.name for k in available_kinds()}
    if "slurm" not in kinds:
        pytest.skip("the targets-slurm plugin of this repository is not installed (make install)")
    cls = load_kind("slurm")
    page.goto(studio.base + "/compute/attach")
    page.get_by_role("link", name="slurm", exact=True).click()
    form = page.locator("#attach-form")
    for name, info in cls.options_model.model_fields.items():
        label = form.locator(f'[data-field="{name}"]')
        expect(label).to_contain_text(name.replace("_", " "))
        expect(label.locator(f'[name="o.{name}"]')).to_have_count(1)
        if info.description:
            expect(label.locator(".help")).not_to_be_empty()
    for secret in cls.secret_names:
        expect(form.locator(f'input[type="password"][name="s.{secret}"]')).to_have_count(1)
    # Made, not attached: clusters are not offered here.
    expect(page.locator("nav.kinds")).not_to_contain_text("cluster")


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class PluginOptions(BaseModel):
    """Options a plugin kind might declare."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    host: str
    """Where it is."""
    port: int = Field(default=22, ge=1, le=65535)
    ratio: float | None = None
    mode: Literal["fast", "safe"] = "safe"
    color: Color | None = None
    verbose: bool = False
    keep: bool = True
    gpu: bool | None = None
    hosts: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)


def test_forms_are_generated_from_an_options_model_and_read_back() -> None:
    fields = {f.name: f for f in form_fields(PluginOptions, prefix="o.")}
    widgets = {name: f.widget for name, f in fields.items()}
    assert widgets == {
        "host": "text",
        "port": "number",
        "ratio": "number",
        "mode": "select",
        "color": "select",
        "verbose": "checkbox",
        "keep": "checkbox",
        "gpu": "tristate",
        "hosts": "list",
        "labels": "mapping",
    }
    assert fields["host"].required and fields["host"].help == "Where it is."
    assert not fields["port"].required and fields["port"].value == "22"
    assert fields["ratio"].step == "any"
    assert fields["mode"].choices == ("fast", "safe") and fields["mode"].value == "safe"
    assert fields["color"].choices == ("", "red", "blue")
    assert fields["keep"].checked and not fields["verbose"].checked
    assert fields["port"].input_name == "o.port" and fields["port"].flag == "--port"

    values = form_values(
        list(fields.values()),
        {
            "o.host": " box ",
            "o.port": "2222",
            "o.ratio": "",
            "o.mode": "fast",
            "o.color": "",
            "o.verbose": "on",
            "o.hosts": "a, b\nc,",
            "o.labels": "team=ml, tier = gold",
        },
    )
    assert values == {
        "host": "box",
        "port": "2222",
        "mode": "fast",
        "verbose": True,
        "keep": False,
        "hosts": ["a", "b", "c"],
        "labels": {"team": "ml", "tier": "gold"},
    }
    parsed = PluginOptions.model_validate(values)
    assert parsed.port == 2222 and parsed.mode == "fast" and parsed.hosts == ["a", "b", "c"]
    # A value the model refuses is left for the model to refuse, with its own message.
    bad = form_values(list(fields.values()), {"o.host": "h", "o.port": "http", "o.labels": "x"})
    assert bad["port"] == "http" and bad["labels"] == "x"
