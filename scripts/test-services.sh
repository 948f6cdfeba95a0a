#!/usr/bin/env bash
# Installs and checks the system pieces the test suite needs on a fresh Debian machine.
# Services themselves (sshd, dockerd, ...) are started by the test session's fixtures on
# 127.0.0.1 only. Safe to run again: it only installs what is missing.
set -euo pipefail

need=()
command -v git >/dev/null || need+=(git)

if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]} (install them, or run as root on Debian to have this script do it)" >&2
    [ -n "${CI:-}" ] && exit 1
  fi
fi
