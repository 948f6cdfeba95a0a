"""Package indexes and TLS on the target: environment builds honour the target's own pip
configuration, PIP_* variables and OS trust store (issue 12, item 5).

The shape reproduced: a VM reached over SSH whose login session exports no
``SSL_CERT_FILE``, whose package index is a private HTTPS feed signed by a CA that only
the machine's configuration knows (the user's ``pip.conf`` ``cert =``, or the OS trust
store, like a corporate TLS-inspecting proxy). uv ignores both unless told, so the build
failed with ``invalid peer certificate: UnknownIssuer`` while pip on the same VM worked.

Everything is real and on 127.0.0.1: an HTTPS PEP 503 index (``http.server`` + ``ssl``)
serving one wheel, with a throwaway CA made here; OpenSSH's sshd; the ``targets`` command.

Design choice: the SSH side logs in as a user of its own, ``targets-tls``, instead of the
suite's shared ``targets-test``: these tests write that user's ``~/.config/pip/pip.conf``,
and an index URL or a CA there would change every other test's builds on the shared
user while they run on other xdist workers. The tests of this module run on one worker
(``xdist_group``) and hold a machine-wide lock while the user's home is theirs, so
concurrent test sessions on one machine do not mix their pip.conf files either.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import http.server
import ipaddress
import os
import pwd
import shutil
import ssl
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uv as uv_package
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from targets.agent.envs import ensure_environment, package_settings
from tests.conftest import CLIResult
from tests.sshd import (
    KEY_TAG,
    STATE_DIR,
    SSHServer,
    _authorize,
    _free_port,
    _keygen,
    _machine_lock,
    skip_or_fail,
    unavailable_reason,
)
from tests.test_environments import make_wheel
from tests.test_vm import attach_args

pytestmark = pytest.mark.xdist_group("target-tls")

TLS_USER = "targets-tls"
UV = uv_package.find_uv_bin()


# -- a throwaway CA and an HTTPS package index on 127.0.0.1 ---------------------------------


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """``(ca.pem, server.pem, server.key)``: a CA and a server certificate for 127.0.0.1
    signed by it. The CA's private key never touches the disk: once the server
    certificate is signed, nothing can be signed with this CA again."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("targets test throwaway CA"))
        .issuer_name(_name("targets test throwaway CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    del ca_key
    ca_pem = folder / "ca.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    os.chmod(ca_pem, 0o644)  # the SSH user reads it
    server_pem = folder / "server.pem"
    server_pem.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_path = folder / "server.key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            server_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return ca_pem, server_pem, key_path


@dataclass
class PackageIndex:
    """A PEP 503 simple index over HTTPS on 127.0.0.1 and the requests it answered."""

    url: str  # https://127.0.0.1:PORT
    ca: Path
    wheels: Path
    requests: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)

    @property
    def simple(self) -> str:
        return self.url + "/simple/"

    def add_package(self) -> tuple[str, str]:
        """A new wheel ``tlspkg-1.0.N``; returns ``(requirement, version)``. A fresh
        version per test, so no environment or uv cache of an earlier test is reused."""
        version = f"1.0.{uuid.uuid4().int % 10**9}"
        make_wheel(self.wheels, "tlspkg", version)
        return f"tlspkg=={version}", version

    def asked(self, path: str) -> bool:
        return any(r.startswith(path) for r in self.requests)


def _handler(index: PackageIndex) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.do_GET(head=True)

        def do_GET(self, head: bool = False) -> None:
            self.head = head
            index.requests.append(self.path)
            index.authorizations.append(self.headers.get("Authorization") or "")
            path = self.path.split("?", 1)[0]
            if path in ("/simple/tlspkg/", "/simple/tlspkg"):
                links = []
                for wheel in sorted(index.wheels.glob("tlspkg-*.whl")):
                    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
                    links.append(f'<a href="/files/{wheel.name}#sha256={digest}">{wheel.name}</a>')
                self._send(
                    200, "text/html", ("<!DOCTYPE html><html><body>" + "".join(links)).encode()
                )
            elif path.startswith("/files/") and (index.wheels / path[7:]).is_file():
                self._send(200, "application/octet-stream", (index.wheels / path[7:]).read_bytes())
            else:
                self._send(404, "text/plain", b"not here\n")

        def _send(self, code: int, kind: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not self.head:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # kept in index.requests

    return Handler


@pytest.fixture(scope="module")
def package_index() -> Iterator[PackageIndex]:
    """An HTTPS index on 127.0.0.1 whose certificate only the throwaway CA vouches for."""
    folder = Path(f"/tmp/targets-tls-{uuid.uuid4().hex}")  # readable by the SSH user
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    ca, cert, key = _make_certificates(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    index = PackageIndex(url=f"https://127.0.0.1:{server.server_address[1]}", ca=ca, wheels=folder)
    server.RequestHandlerClass = _handler(index)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield index
    server.shutdown()
    server.server_close()
    shutil.rmtree(folder, ignore_errors=True)


# -- an SSH user of this module's own -------------------------------------------------------


@pytest.fixture(scope="module")
def tls_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """sshd on 127.0.0.1 that lets ``targets-tls`` in (key login). Its sessions export
    no ``SSL_CERT_FILE``: sshd starts them with a clean environment."""
    reason = unavailable_reason()
    if reason:
        skip_or_fail(reason)
    base = tmp_path_factory.mktemp("tls-sshd")
    os.chmod(base, 0o755)
    key = base / "id_plain"
    _keygen(key, comment=f"{KEY_TAG}{key}")
    with _machine_lock():
        try:
            entry = pwd.getpwnam(TLS_USER)
        except KeyError:
            subprocess.run(["useradd", "-m", "-s", "/bin/bash", TLS_USER], check=False)
            entry = pwd.getpwnam(TLS_USER)
        _authorize(entry, [Path(f"{key}.pub")])
    server = SSHServer(
        dir=base,
        port=_free_port(),
        password="",
        key=key,
        encrypted_key=key,
        key_passphrase="",
        user=TLS_USER,
        home=Path(entry.pw_dir),
    )
    _keygen(server.host_key, comment="targets-tls-host")
    server.write_config()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def target_home(tls_sshd: SSHServer) -> Iterator[Callable[[str], None]]:
    """``write_pip_conf(text)`` writes ``~targets-tls/.config/pip/pip.conf``. While the
    test runs, the user's home is this test's (a machine-wide lock); afterwards the file
    is as it was before (removed when there was none)."""
    STATE_DIR.mkdir(mode=0o700, exist_ok=True)
    entry = pwd.getpwnam(TLS_USER)
    conf = tls_sshd.home / ".config" / "pip" / "pip.conf"
    with open(STATE_DIR / "tls-user.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = conf.read_bytes() if conf.exists() else None

        def write_pip_conf(text: str) -> None:
            for folder in (conf.parent.parent, conf.parent):
                folder.mkdir(exist_ok=True)
                os.chown(folder, entry.pw_uid, entry.pw_gid)
            conf.write_text(text)
            os.chown(conf, entry.pw_uid, entry.pw_gid)

        try:
            yield write_pip_conf
        finally:
            if before is None:
                conf.unlink(missing_ok=True)
            else:
                conf.write_bytes(before)


def attach(cli: Callable[..., CLIResult], sshd: SSHServer, name: str = "vm1") -> None:
    result = cli(*attach_args(sshd, name, "--ssh-key", str(sshd.key), "--accept-host-key"))
    assert result.code == 0, result


def write_run(project: Path, pip_lines: list[str], version: str) -> Path:
    """A runconfig whose conda_dependencies hold ``pip_lines``; its script prints the
    version of tlspkg it imported."""
    (project / "use.py").write_text("import tlspkg\nprint('remote tlspkg', tlspkg.VERSION)\n")
    conda = "dependencies:\n- python\n- pip:\n" + "".join(f"  - {line}\n" for line in pip_lines)
    (project / "conda_dependencies.yml").write_text(conda)
    rc = project / "rc.yml"
    rc.write_text(
        "script: use.py\ntarget: vm1\nenvironment:\n  python:\n"
        "    conda_dependencies_file: conda_dependencies.yml\n"
    )
    return rc


# -- the tests -------------------------------------------------------------------------------


def test_vm_build_uses_the_index_and_certificate_of_the_users_pip_conf(
    tls_sshd, target_home, package_index, project, cli
):
    requirement, version = package_index.add_package()
    target_home(f"[global]\nindex-url = {package_index.simple}\ncert = {package_index.ca}\n")
    attach(cli, tls_sshd)
    session = cli("run", "-c", "echo cert=${SSL_CERT_FILE-none}", "--target", "vm1")
    assert session.code == 0 and "cert=none" in session.out, session  # the shape of the bug
    write_run(project, [requirement], version)
    ran = cli("run", "rc.yml", timeout=300)
    assert ran.code == 0, ran
    assert f"remote tlspkg {version}" in ran.out
    assert package_index.asked("/simple/tlspkg/") and package_index.asked("/files/tlspkg-")
    assert f"package index: {package_index.simple}" in ran.out  # prepare.log says which
    assert f"cert bundle: {package_index.ca}" in ran.out


@pytest.fixture
def os_trusts_the_ca(package_index: PackageIndex) -> Iterator[None]:
    """The throwaway CA in the OS trust store (update-ca-certificates), removed again
    afterwards. Needs root; harmless meanwhile, since nothing can sign with that CA."""
    tool = shutil.which("update-ca-certificates") or "/usr/sbin/update-ca-certificates"
    store = Path("/usr/local/share/ca-certificates")
    if os.geteuid() != 0 or not Path(tool).exists() or not store.is_dir():
        skip_or_fail("adding a CA to the OS trust store needs root and update-ca-certificates")
    added = store / f"targets-test-throwaway-{package_index.ca.parent.name}.crt"
    shutil.copyfile(package_index.ca, added)
    try:
        subprocess.run([tool], check=True, capture_output=True)
        yield
    finally:
        added.unlink(missing_ok=True)
        # update-ca-certificates leaves the links to a removed local CA dangling.
        certs = Path("/etc/ssl/certs")
        pem = certs / (added.stem + ".pem")
        for link in certs.iterdir() if certs.is_dir() else ():
            if link.is_symlink() and os.readlink(link) in (str(added), pem.name, str(pem)):
                link.unlink()
        subprocess.run([tool], check=False, capture_output=True)


def test_vm_build_trusts_the_os_trust_store_without_ssl_cert_file(
    tls_sshd, target_home, package_index, os_trusts_the_ca, project, cli
):
    requirement, version = package_index.add_package()
    target_home(f"[global]\nindex-url = {package_index.simple}\n")  # no cert line
    attach(cli, tls_sshd)
    write_run(project, [requirement], version)
    ran = cli("run", "rc.yml", timeout=300)
    assert ran.code == 0, ran
    assert f"remote tlspkg {version}" in ran.out
    assert package_index.asked("/files/tlspkg-")
    # The OS bundle (directly, or through a system pip.conf that names it).
    assert "cert bundle: /etc/" in ran.out


def test_runconfig_index_url_wins_over_pip_conf_and_its_token_is_never_shown(
    tls_sshd, target_home, package_index, project, cli
):
    requirement, version = package_index.add_package()
    target_home(
        f"[global]\nindex-url = {package_index.url}/wrong/simple/\ncert = {package_index.ca}\n"
    )
    attach(cli, tls_sshd)
    token = uuid.uuid4().hex
    authed = package_index.simple.replace("https://", f"https://alice:{token}@")
    write_run(project, [f"--index-url {authed}", requirement], version)
    ran = cli("run", "rc.yml", timeout=300)
    assert ran.code == 0, ran
    assert f"remote tlspkg {version}" in ran.out
    assert package_index.asked("/simple/tlspkg/")
    assert not package_index.asked("/wrong/")
    assert any(a.startswith("Basic ") for a in package_index.authorizations)  # it was sent
    assert token not in ran.out + ran.err
    assert "https://***@127.0.0.1" in ran.out


def test_show_names_the_index_with_masked_credentials_and_the_cert_bundle(
    tls_sshd, target_home, package_index, project, cli
):
    target_home("[global]\n")
    attach(cli, tls_sshd)
    # pip.conf written after the attach: show asks the target, it does not repeat old facts.
    token = uuid.uuid4().hex
    authed = package_index.simple.replace("https://", f"https://bob:{token}@")
    target_home(
        f"[global]\nindex-url = {authed}\n[install]\ncert = {package_index.ca}\n"
        "extra-index-url =\n    https://127.0.0.1:9/one/\n    https://127.0.0.1:9/two/\n"
    )
    shown = cli("show", "vm1")
    assert shown.code == 0, shown
    conf = f"{tls_sshd.home}/.config/pip/pip.conf"
    masked = package_index.simple.replace("https://", "https://***@")
    assert "package index" in shown.out and masked in shown.out
    assert "cert bundle" in shown.out and str(package_index.ca) in shown.out
    assert token not in shown.out
    as_json = cli("show", "vm1", "-o", "json")
    assert token not in as_json.out
    facts = as_json.json()["facts"]
    assert facts["package_index"] == f"{masked} ({conf})"
    assert facts["cert_bundle"] == f"{package_index.ca} ({conf})"
    assert facts["extra_index_url"].startswith("https://127.0.0.1:9/one/ https://127.0.0.1:9/two/")
    # The local target too: its build would use this process's PIP_* variables.
    local = cli("show", "local", "-o", "json", env={"PIP_INDEX_URL": authed})
    assert local.json()["facts"]["package_index"] == f"{masked} (PIP_INDEX_URL)", local
    assert token not in local.out


# -- the same translation in the agent, without SSH ------------------------------------------


def test_pip_variables_reach_a_local_uv_build(
    tmp_path: Path, package_index: PackageIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PIP_INDEX_URL and PIP_CERT (no pip.conf at all) are what a local build uses."""
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "UV_INDEX_URL", "UV_DEFAULT_INDEX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", package_index.simple)
    monkeypatch.setenv("PIP_CERT", str(package_index.ca))
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    requirement, _version = package_index.add_package()
    spec: dict[str, Any] = {
        "managed": True,
        "pip_packages": [requirement],
        "hash": hashlib.sha256(requirement.encode()).hexdigest()[:32],
    }
    with open(tmp_path / "prepare.log", "w+b") as log:
        result = ensure_environment(spec, str(tmp_path / "root"), log, uv=str(UV))
    assert result["builder"] == "uv"
    assert package_index.asked("/files/tlspkg-")
    logged = (tmp_path / "prepare.log").read_text()
    assert f"# package index: {package_index.simple} (PIP_INDEX_URL)" in logged
    assert f"# cert bundle: {package_index.ca} (PIP_CERT)" in logged


def test_pip_conf_files_and_variables_translate_to_uv(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\nindex_url = https://u:secret@127.0.0.1:1/simple/\n"
        "trusted-host = 127.0.0.1 localhost\nfind-links =\n  /w1\n  /w2\n"
        "[install]\nextra-index-url = https://127.0.0.1:2/a/ https://127.0.0.1:3/b/\n"
        "no-index = false\nproxy = http://127.0.0.1:4\n"
    )
    env = {"PIP_CONFIG_FILE": str(conf), "HOME": str(tmp_path), "XDG_CONFIG_DIRS": str(tmp_path)}
    settings = package_settings(env)
    assert settings["env"]["UV_INDEX_URL"] == "https://u:secret@127.0.0.1:1/simple/"
    assert settings["env"]["UV_EXTRA_INDEX_URL"] == "https://127.0.0.1:2/a/ https://127.0.0.1:3/b/"
    assert settings["env"]["UV_FIND_LINKS"] == "/w1,/w2"
    assert settings["env"]["UV_INSECURE_HOST"] == "127.0.0.1 localhost"
    assert settings["env"]["HTTPS_PROXY"] == "http://127.0.0.1:4"
    assert settings["no_index"] is False
    assert "secret" not in str(settings["shown"])
    # PIP_* beats the file; uv's own variables beat both.
    env.update(PIP_INDEX_URL="https://127.0.0.1:5/simple/", UV_FIND_LINKS="/mine")
    settings = package_settings(env)
    assert settings["env"]["UV_INDEX_URL"] == "https://127.0.0.1:5/simple/"
    assert "UV_FIND_LINKS" not in settings["env"]
    assert settings["shown"]["find_links_from"] == "UV_FIND_LINKS"
    # PIP_CONFIG_FILE=/dev/null: pip reads no file at all.
    settings = package_settings({"PIP_CONFIG_FILE": os.devnull, "HOME": str(tmp_path)})
    assert "UV_INDEX_URL" not in settings["env"]
    assert settings["shown"]["index_from"] == "none configured"
