# Sourced by the test setup scripts: `apt_install PACKAGE...` installs Debian packages
# quietly, without letting any of them start a system service (policy-rc.d: no sshd on
# port 22, no dockerd with its default bridge, no slurm daemons from the package's config;
# the tests start their own). On failure it prints apt's whole log on stderr and returns
# apt's status.
apt_install() {
  apt-get update -qq
  local policy=/usr/sbin/policy-rc.d made_policy= log status=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
  fi
  log=$(mktemp)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "$@" >"$log" 2>&1 || status=$?
  [ -n "$made_policy" ] && rm -f "$policy"
  [ "$status" = 0 ] || cat "$log" >&2
  rm -f "$log"
  return "$status"
}
