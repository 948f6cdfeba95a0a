"""The ``localsshd`` node provider for targets clusters."""

from targets_localsshd.provider import LocalSSHDOptions, LocalSSHDProvider

__all__ = ["LocalSSHDOptions", "LocalSSHDProvider"]
