"""The SSH key pair of one cluster: made when the cluster is created, the private half kept
only in the keyring (never in a file), the public half given to the provider so every node
accepts it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SECRET_NAME", "KeyPair", "generate_key_pair", "public_key_of"]

SECRET_NAME = "ssh_private_key"
"""The name of the cluster's private key among its secrets."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    private: str
    """OpenSSH private key text (ed25519, unencrypted: it lives in the keyring)."""
    public: str
    """``ssh-ed25519 AAAA... comment``."""


def generate_key_pair(comment: str) -> KeyPair:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return KeyPair(private=private, public=f"{public.decode()} {comment}")


def public_key_of(private: str, comment: str) -> str:
    """The public line of a stored private key."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(private.encode(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return f"{public.decode()} {comment}"
