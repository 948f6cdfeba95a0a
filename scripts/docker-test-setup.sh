#!/usr/bin/env bash
# Sets up the Docker engine and the base image that tests/dockerd.py needs, on a machine
# where no image registry is reachable. Called at the end of scripts/test-services.sh (so by
# `make pytest`); safe to run again: each step is skipped when its result is already there.
#
#   1. engine: when no Docker engine answers `docker info`, start dockerd as root with NO
#      bridge (--bridge=none --iptables=false --ip6tables=false): containers can only use
#      `--network host` or `--network none`, and nothing routes to private address ranges.
#      It keeps running after the tests (log: /var/log/targets-test-dockerd.log, pid file:
#      /run/targets-test-dockerd.pid), so later runs reuse it.
#   2. image: when targets-test-python:bookworm is absent, debootstrap a minimal Debian
#      bookworm with python3, venv and pip (from the Debian mirror that the machine's own apt
#      sources name, else debootstrap's own default) and `docker import` it. It stays cached in the
#      engine; `docker image rm targets-test-python:bookworm` forces a rebuild.
#   3. node image: when targets-test-node:bookworm (the cluster tests' nodes: containers
#      running sshd) is absent, `docker build --network host` it FROM the base image:
#      openssh-server, openmpi-bin and procps from the same Debian mirror, and PyTorch
#      $TORCH_VERSION (CPU) with numpy in the system python3. The torch wheel and its deps are
#      `pip download`ed on the host (its pip finds the local CPU wheel in /opt/wheels) into
#      the build context, so pip inside the image installs with --no-index. Cached like the
#      base image; `docker image rm targets-test-node:bookworm` forces a rebuild.
#
# What it cannot do (no docker CLI, not root, no debootstrap, dockerd does not start) it
# prints, then exits 0 so that the tests skip with their reason, or exits 1 when the
# environment variable CI is set, because CI must not skip them.
set -euo pipefail

IMAGE=targets-test-python:bookworm
NODE_IMAGE=targets-test-node:bookworm
TORCH_VERSION=2.13.0
SUITE=bookworm
DOCKERD_LOG=/var/log/targets-test-dockerd.log
DOCKERD_PIDFILE=/run/targets-test-dockerd.pid
LOCK=/run/targets-test-docker.lock
START_TIMEOUT=${TARGETS_DOCKERD_START_TIMEOUT:-60}
PATH=$PATH:/usr/sbin:/sbin

say() { echo "docker-test-setup: $*"; }

# Cannot set up Docker here: say why; fail only under CI.
cannot() {
  if [ -n "${CI:-}" ]; then
    echo "docker-test-setup: $* (CI is set: failing instead of letting the Docker tests skip)" >&2
    exit 1
  fi
  echo "docker-test-setup: $*; the tests that need Docker will skip" >&2
  exit 0
}

engine_answers() { docker info >/dev/null 2>&1; }

# The first URI that apt uses for Debian's $SUITE (one-line .list and deb822 .sources).
configured_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk -v suite="$SUITE" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    # deb822: stanzas separated by blank lines; fields Types, URIs, Suites, Enabled.
    awk -v suite="$SUITE" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && uris != "")
          { split(uris, u, " "); print u[1]; found = 1 }
        types = ""; suites = ""; uris = ""; enabled = ""
      }
      /^[ \t]*$/ { flush(); if (found) exit; next }
      /^#/ { next }
      tolower($1) == "types:" { $1 = ""; types = $0 }
      tolower($1) == "uris:" { $1 = ""; uris = $0 }
      tolower($1) == "suites:" { $1 = ""; suites = $0 }
      tolower($1) == "enabled:" { enabled = tolower($2) }
      END { if (!found) flush() }' "$f"
  done
}

# debootstrap's own default mirror, read from the installed debootstrap (so that no mirror's
# host name is written into this repository); empty when it names none.
debootstrap_mirror() {
  local script
  script=$(command -v debootstrap 2>/dev/null) || return 0
  sed -n 's/^DEF_MIRROR="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$script" | head -n 1
}

# The mirror to use: apt's own first, else debootstrap's default.
debian_mirror() {
  local mirror
  mirror=$(configured_mirror | head -n 1)
  [ -n "$mirror" ] || mirror=$(debootstrap_mirror)
  echo "$mirror"
}

start_dockerd() {
  local pid=
  [ -r "$DOCKERD_PIDFILE" ] && pid=$(cat "$DOCKERD_PIDFILE" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    say "dockerd (pid $pid) is running but does not answer yet: waiting"
  else
    local dockerd
    dockerd=$(command -v dockerd) || cannot "dockerd is not installed (apt-get install docker.io)"
    say "starting dockerd --bridge=none (log: $DOCKERD_LOG)"
    # setsid + fd 9 (the lock) closed: the daemon outlives this script and holds no lock.
    setsid "$dockerd" --bridge=none --iptables=false --ip6tables=false \
      --pidfile "$DOCKERD_PIDFILE" </dev/null >>"$DOCKERD_LOG" 2>&1 9>&- &
    pid=$!
  fi
  local started=$SECONDS
  until engine_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      cannot "dockerd exited while starting (log above, whole log: $DOCKERD_LOG)"
    fi
    if ((SECONDS - started >= START_TIMEOUT)); then
      tail -n 30 "$DOCKERD_LOG" >&2 || true
      cannot "dockerd (pid $pid) did not answer \`docker info\` within ${START_TIMEOUT}s (log above, whole log: $DOCKERD_LOG)"
    fi
    sleep 0.2
  done
  say "dockerd answers after $((SECONDS - started))s (pid $pid)"
}

# debootstrap into a fresh folder from one mirror; 0 on success. Quiet unless it fails.
bootstrap() {
  local mirror=$1 root=$2 log=$3
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip \
    "$SUITE" "$root" "$mirror" >"$log" 2>&1
}

build_image() {
  command -v debootstrap >/dev/null ||
    cannot "image $IMAGE is missing and debootstrap is not installed (apt-get install debootstrap)"
  local work mirror mirrors=() started=$SECONDS
  mirror=$(configured_mirror | head -n 1)
  [ -n "$mirror" ] && mirrors+=("$mirror")
  local fallback
  fallback=$(debootstrap_mirror)
  [ -n "$fallback" ] && [ "$fallback" != "$mirror" ] && mirrors+=("$fallback")
  ((${#mirrors[@]})) ||
    cannot "no Debian mirror: apt's sources name none and debootstrap has no default (add one to /etc/apt/sources.list.d)"
  work=$(mktemp -d /var/tmp/targets-test-image.XXXXXX)
  # shellcheck disable=SC2064  # expand now: $work is local
  trap "rm -rf '$work'" EXIT
  local ok=
  for mirror in "${mirrors[@]}"; do
    say "building $IMAGE: debootstrap $SUITE from $mirror (about a minute)"
    rm -rf "$work/root"
    if bootstrap "$mirror" "$work/root" "$work/debootstrap.log"; then
      ok=1
      break
    fi
    tail -n 20 "$work/debootstrap.log" >&2
    say "debootstrap from $mirror failed (log above)"
  done
  [ -n "$ok" ] || cannot "could not debootstrap $SUITE from: ${mirrors[*]}"
  # The downloaded .debs and package lists only make the image bigger.
  rm -rf "$work"/root/var/cache/apt/archives/*.deb "$work"/root/var/lib/apt/lists/*
  tar -C "$work/root" -c . |
    docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$IMAGE" >/dev/null
  rm -rf "$work"
  trap - EXIT
  say "built $IMAGE in $((SECONDS - started))s ($(docker image inspect -f '{{.Size}}' "$IMAGE" |
    awk '{printf "%d MB", $1 / 1e6}'))"
}

# The cluster tests' node image: sshd, OpenMPI and CPU PyTorch on top of $IMAGE.
build_node_image() {
  local work mirror started=$SECONDS
  mirror=$(debian_mirror)
  [ -n "$mirror" ] ||
    cannot "image $NODE_IMAGE is missing and no Debian mirror is known (apt's sources name none)"
  command -v python3 >/dev/null ||
    cannot "image $NODE_IMAGE is missing and python3 (to pip download torch) is not installed"
  work=$(mktemp -d /var/tmp/targets-test-node.XXXXXX)
  # shellcheck disable=SC2064  # expand now: $work is local
  trap "rm -rf '$work'" EXIT
  say "building $NODE_IMAGE: sshd, OpenMPI, torch $TORCH_VERSION (CPU) from $mirror (a few minutes)"
  mkdir "$work/wheels"
  # The image's python3 is bookworm's 3.11 on x86_64: download wheels for exactly that.
  if ! python3 -m pip download -q --only-binary=:all: --python-version 3.11 \
    --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d "$work/wheels" "torch==$TORCH_VERSION" numpy >"$work/pip.log" 2>&1; then
    tail -n 20 "$work/pip.log" >&2
    cannot "could not pip download torch==$TORCH_VERSION and its dependencies for $NODE_IMAGE (log above)"
  fi
  # Two stages: pip installs from the wheels in the first; the second copies only the
  # installed packages, so the ~200 MB of wheels are in no layer of the image.
  cat >"$work/Dockerfile" <<DOCKERFILE
FROM $IMAGE AS torch
COPY wheels /wheels
RUN python3 -m pip install -q --no-index --find-links /wheels --break-system-packages \\
      --no-cache-dir --root-user-action=ignore "torch==$TORCH_VERSION" numpy

FROM $IMAGE
RUN printf 'deb $mirror $SUITE main\\n' >/etc/apt/sources.list \\
 && rm -f /etc/apt/sources.list.d/* \\
 && apt-get update -q \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
      openssh-server openmpi-bin procps \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_*_key* \\
 && mkdir -p /run/sshd
COPY --from=torch /usr/local/lib/python3.11/dist-packages /usr/local/lib/python3.11/dist-packages
COPY --from=torch /usr/local/bin /usr/local/bin
DOCKERFILE
  if ! docker build -q --network host -t "$NODE_IMAGE" "$work" >"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log" >&2
    cannot "docker build of $NODE_IMAGE failed (log above)"
  fi
  rm -rf "$work"
  trap - EXIT
  say "built $NODE_IMAGE in $((SECONDS - started))s ($(docker image inspect -f '{{.Size}}' "$NODE_IMAGE" |
    awk '{printf "%d MB", $1 / 1e6}'))"
}

command -v docker >/dev/null || cannot "the docker CLI is not installed (apt-get install docker.io)"
root=
[ "$(id -u)" = 0 ] && root=1

if [ -z "$root" ]; then
  # Without root nothing can be started or built; a running engine and cached image suffice.
  engine_answers ||
    cannot "no Docker engine answers \`docker info\` (run scripts/test-services.sh as root to start one)"
  docker image inspect "$IMAGE" >/dev/null 2>&1 ||
    cannot "image $IMAGE is missing (run scripts/test-services.sh as root to build it)"
  docker image inspect "$NODE_IMAGE" >/dev/null 2>&1 ||
    cannot "image $NODE_IMAGE is missing (run scripts/test-services.sh as root to build it)"
  say "engine answers; images $IMAGE and $NODE_IMAGE are present"
  exit 0
fi

# One setup at a time on the machine (concurrent `make pytest` runs share the engine).
exec 9>"$LOCK"
flock 9

if engine_answers; then
  say "engine answers ($(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?'))"
else
  start_dockerd
fi

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  say "image $IMAGE is present (cached)"
else
  build_image
fi

if docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
  say "image $NODE_IMAGE is present (cached)"
else
  build_node_image
fi
