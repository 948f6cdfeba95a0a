"""No package registry's or mirror's host name is written into the repository.

The host names are not written here either: they are read from this machine's own
configuration (apt's sources, pip's configuration, npm's) and from the defaults of the
installed clients (pip's index, debootstrap's mirror), so the test checks exactly the
registries this machine uses.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent


def _host(url: str) -> str | None:
    host = urlsplit(url.strip().strip("'\"")).hostname
    return host.lower() if host else None


def _apt_hosts() -> set[str]:
    hosts: set[str] = set()
    apt = Path("/etc/apt")
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file() or path.suffix not in {".list", ".sources", ""}:
            continue
        for line in path.read_text(errors="replace").splitlines():
            line = line.strip()
            if line.lower().startswith("uris:"):
                hosts.update(filter(None, map(_host, line[5:].split())))
            elif line.startswith(("deb ", "deb-src ")):
                hosts.update(filter(None, map(_host, re.findall(r"\w+://\S+", line))))
    return hosts


def _pip_hosts() -> set[str]:
    hosts: set[str] = set()
    try:
        from pip._internal.models.index import PyPI

        hosts.update({PyPI.netloc, PyPI.file_storage_domain})
    except ImportError:  # pip's internals moved: the configured indexes still count
        pass
    parser = configparser.ConfigParser(interpolation=None)
    candidates = [
        os.environ.get("PIP_CONFIG_FILE", ""),
        "/etc/pip.conf",
        "/etc/xdg/pip/pip.conf",
        str(Path.home() / ".config/pip/pip.conf"),
        str(Path.home() / ".pip/pip.conf"),
    ]
    parser.read([c for c in candidates if c and Path(c).is_file()])
    for section in parser.sections():
        for key in ("index-url", "extra-index-url", "find-links", "trusted-host"):
            for value in parser.get(section, key, fallback="").split():
                hosts.add(_host(value) or value.lower())
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "UV_INDEX_URL", "UV_DEFAULT_INDEX"):
        for value in os.environ.get(key, "").split():
            hosts.add(_host(value) or "")
    return hosts


def _npm_hosts() -> set[str]:
    npm = shutil.which("npm")
    if not npm:
        return set()
    try:
        out = subprocess.run(
            [npm, "config", "get", "registry"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    host = _host(out)
    return {host} if host else set()


def _debootstrap_hosts() -> set[str]:
    script = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(script).is_file():
        return set()
    match = re.search(r'^DEF_MIRROR="?([^"\n]+)"?', Path(script).read_text(errors="replace"), re.M)
    host = _host(match.group(1)) if match else None
    return {host} if host else set()


def registry_hosts() -> set[str]:
    hosts = _apt_hosts() | _pip_hosts() | _npm_hosts() | _debootstrap_hosts()
    # Names too short or too generic to be a registry's (a bare "localhost") prove nothing.
    return {h for h in hosts if h and "." in h and h not in {"localhost", "127.0.0.1"}}


def _tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    return [REPO / name for name in out.decode().split("\0") if name]


def test_no_registry_or_mirror_host_name_is_in_the_repository() -> None:
    hosts = registry_hosts()
    if not hosts:
        if os.environ.get("CI"):
            pytest.fail("no package registry is configured on this machine: nothing to check")
        pytest.skip("no package registry is configured on this machine")
    pattern = re.compile("|".join(re.escape(h) for h in sorted(hosts, key=len, reverse=True)), re.I)
    found = []
    for path in _tracked_files():
        if not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        for number, line in enumerate(data.decode(errors="replace").splitlines(), 1):
            match = pattern.search(line)
            if match:
                found.append(f"{path.relative_to(REPO)}:{number}: {match.group(0)}")
    assert not found, (
        "package registry or mirror host names in the repository (read them from the "
        "machine's configuration instead):\n" + "\n".join(found)
    )


def test_the_check_knows_this_machines_registries() -> None:
    """The check above is only worth something if it found the registries in use."""
    hosts = registry_hosts()
    if not (Path("/etc/apt").is_dir() or shutil.which("pip")):
        pytest.skip("neither apt nor pip is configured here")
    # pip always has a default index, so at least that one must be known.
    assert hosts, "no registry host was found in apt's, pip's or npm's configuration"
