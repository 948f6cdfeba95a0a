#!/usr/bin/env bash
# Installs and checks the system pieces the test suite needs on a fresh Debian machine.
# Services themselves (sshd, dockerd, ...) are started by the test session's fixtures on
# 127.0.0.1 only. Safe to run again: it only installs what is missing.
set -euo pipefail

need=()
command -v git >/dev/null || need+=(git)
# sshd plays the remote VM in tests/sshd.py; ssh-keygen makes its keys.
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)

if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    # policy-rc.d: the package must not start a system-wide sshd on port 22; the tests
    # start their own on 127.0.0.1.
    policy=/usr/sbin/policy-rc.d
    made_policy=
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    log=$(mktemp)
    status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${need[@]}" >"$log" 2>&1 || status=$?
    [ -n "$made_policy" ] && rm -f "$policy"
    # Quiet on success; the whole apt log on failure.
    if [ "$status" != 0 ]; then cat "$log" >&2; rm -f "$log"; exit "$status"; fi
    rm -f "$log"
  else
    echo "missing: ${need[*]} (install them, or run as root on Debian to have this script do it)" >&2
    [ -n "${CI:-}" ] && exit 1
  fi
fi
exit 0
