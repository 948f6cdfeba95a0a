"""targets.secrets through a real keyring backend (keyrings.alt's plaintext file in the
test's isolated HOME, selected by conftest), and without any usable backend."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from targets.errors import SecretStoreError
from targets.secrets import (
    SERVICE,
    SecretRef,
    check_backend,
    delete_secret,
    get_secret,
    secret_getter,
    set_secret,
)

VALUE = "s3cr3t-Value-for-tests"


def test_set_get_delete(isolated_home: Path) -> None:
    ref = SecretRef(workspace="/projects/a", target="gpubox", name="password")
    assert get_secret(ref) is None
    set_secret(ref, VALUE)
    assert get_secret(ref) == VALUE
    set_secret(ref, VALUE + "2")
    assert get_secret(ref) == VALUE + "2"
    delete_secret(ref)
    assert get_secret(ref) is None
    delete_secret(ref)  # idempotent


def test_stored_in_the_isolated_home_under_the_documented_names(isolated_home: Path) -> None:
    import keyring

    ref = SecretRef(workspace="/projects/a", target="gpubox", name="ssh_key_passphrase")
    set_secret(ref, VALUE)
    assert keyring.get_password(SERVICE, "/projects/a::gpubox::ssh_key_passphrase") == VALUE
    files = [p for p in isolated_home.rglob("*") if p.is_file()]
    assert files, "the file backend writes into the test's HOME"


def test_two_workspaces_never_share_a_secret(isolated_home: Path) -> None:
    a = SecretRef(workspace="/projects/a", target="vm", name="password")
    b = SecretRef(workspace="/projects/b", target="vm", name="password")
    set_secret(a, "for-a")
    set_secret(b, "for-b")
    assert (get_secret(a), get_secret(b)) == ("for-a", "for-b")
    delete_secret(a)
    assert get_secret(b) == "for-b"


def test_repr_never_shows_a_value(isolated_home: Path) -> None:
    ref = SecretRef(workspace="/projects/a", target="gpubox", name="password")
    set_secret(ref, VALUE)
    getter = secret_getter(ref)
    for text in (repr(ref), str(ref), repr(getter)):
        assert VALUE not in text
    assert repr(ref) == "SecretRef(target='gpubox', name='password')"
    assert str(ref) == "gpubox/password"


def test_getter_resolves_late(isolated_home: Path) -> None:
    ref = SecretRef(workspace="/w", target="t1", name="password")
    getter = secret_getter(ref)  # made before the secret exists
    assert getter() is None
    set_secret(ref, VALUE)
    assert getter() == VALUE


@pytest.mark.parametrize(
    "backend", ["keyring.backends.fail.Keyring", "keyring.backends.null.Keyring"]
)
def test_no_usable_backend_names_the_fix(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", backend)
    ref = SecretRef(workspace="/w", target="vm", name="password")
    with pytest.raises(SecretStoreError) as info:
        check_backend()
    err = info.value
    assert err.exit_code == 2
    text = str(err)
    assert "no usable keyring backend" in text
    assert "TARGETS_KEYRING_PASSPHRASE" in text
    assert "PYTHON_KEYRING_BACKEND=targets.keyring_file.EncryptedFileKeyring" in text
    assert "keyringrc.cfg" in text
    assert "--use-agent" in text and "unencrypted key file" in text
    calls: list[Callable[[], object]] = [lambda: set_secret(ref, VALUE), lambda: get_secret(ref)]
    for call in calls:
        with pytest.raises(SecretStoreError) as info:
            call()
        assert VALUE not in str(info.value)
        assert "TARGETS_KEYRING_PASSPHRASE" in str(info.value)


def test_unloadable_backend_is_a_secret_store_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "no_such_module.Keyring")
    with pytest.raises(SecretStoreError, match="PYTHON_KEYRING_BACKEND"):
        check_backend()


def test_keyring_config_file_is_honoured(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(isolated_home / ".config"))
    config = isolated_home / ".config" / "python_keyring" / "keyringrc.cfg"
    config.parent.mkdir(parents=True)
    config.write_text("[backend]\ndefault-keyring=keyring.backends.fail.Keyring\n")
    with pytest.raises(SecretStoreError):
        check_backend()
    config.write_text("[backend]\ndefault-keyring=keyrings.alt.file.PlaintextKeyring\n")
    check_backend()
    ref = SecretRef(workspace="/w", target="vm", name="password")
    set_secret(ref, VALUE)
    assert get_secret(ref) == VALUE


def test_importing_does_not_import_keyring() -> None:
    code = "import sys, targets.secrets; print('keyring' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
