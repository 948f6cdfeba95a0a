#!/usr/bin/env bash
# Installs and checks the system pieces the test suite needs on a fresh Debian machine.
# sshd is started by the test session's fixtures on 127.0.0.1 only; the Docker engine and
# the test base image are set up at the end by scripts/docker-test-setup.sh (dockerd with no
# bridge: containers use the host's network or none). Safe to run again: it only installs
# and starts what is missing. Quiet on success; the whole apt log on failure.
set -euo pipefail

need=()
command -v git >/dev/null || need+=(git)
# sshd plays the remote VM in tests/sshd.py; ssh-keygen makes its keys.
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
# The Docker engine of tests/dockerd.py. A docker CLI alone (some images ship a static one
# in /usr/local/bin) is not enough: the daemon is what is checked.
[ -x /usr/sbin/dockerd ] || command -v dockerd >/dev/null || need+=(docker.io)
# Builds the test base image without an image registry.
[ -x /usr/sbin/debootstrap ] || command -v debootstrap >/dev/null || need+=(debootstrap)
# mpirun for the MPI runs of tests/test_distributed_local.py.
command -v mpirun >/dev/null || need+=(openmpi-bin)
# iptables makes a node unreachable (tests/test_cluster_ssh_hosts.py) and keeps slurmctld's
# port to loopback; ss (iproute2) shows who holds a connection (test_cluster_docker_remote).
command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] || need+=(iptables)
command -v ss >/dev/null || need+=(iproute2)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
# Debian's Chromium, driven by Playwright for Python (executable_path) in the studio's
# browser tests (tests/studio_browser.py); Playwright's own browser download is never used.
[ -x /usr/bin/chromium ] || need+=(chromium)
# rsync: the reference of `make bench`'s re-upload measurement (benchmarks/_ssh.py).
command -v rsync >/dev/null || need+=(rsync)

if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing: ${need[*]}"
    # shellcheck source=apt-install.sh
    source "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh"
    apt_install "${need[@]}"
  else
    echo "missing: ${need[*]} (install them, or run as root on Debian to have this script do it)" >&2
    [ -n "${CI:-}" ] && exit 1
  fi
fi

# The Docker engine and the test base image (it decides itself whether it can, and fails
# only when CI is set).
bash "$(dirname "${BASH_SOURCE[0]}")/docker-test-setup.sh"
# The one-node Slurm of plugins/targets-slurm (same rules: fails only when CI is set).
bash "$(dirname "${BASH_SOURCE[0]}")/slurm-test-setup.sh"

# Azurite (Azure Storage emulator, from the npm registry) and moto's S3 server (PyPI) for
# the cloud data tests (tests/test_jobs_data.py); same rules.
bash "$(dirname "${BASH_SOURCE[0]}")/storage-test-setup.sh"
