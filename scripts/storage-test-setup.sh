#!/usr/bin/env bash
# The storage emulators of the cloud-data tests (tests/test_jobs_data.py):
# - Azurite, the Azure Storage emulator, from the npm registry, installed with the machine's
#   Node.js and npm (Debian's nodejs and npm when there are none) into
#   /opt/targets-test/azurite; tests/azurite.py starts its blob service on 127.0.0.1.
# - moto's S3 server (moto_server), from PyPI into the suite's virtualenv (pyproject's
#   `test` extra has it; this installs it when that virtualenv lacks it).
# - the GCS emulator (gcp-storage-emulator, PyPI) in the same virtualenv (tests/gcs_emulator.py).
# All use the registries as this machine's npm and pip are configured: no registry host
# is named here.
#
# Idempotent: installs only what is missing and starts nothing (the fixtures start the
# servers, on 127.0.0.1 only). When it cannot (not root, no apt-get) it says why and
# exits 0, so the tests skip with that reason; with CI set it exits 1.
set -euo pipefail

say() { echo "storage-test-setup: $*"; }
cannot() {
  say "cannot set up the storage emulators: $*" >&2
  if [ -n "${CI:-}" ]; then exit 1; fi
  exit 0
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Azurite 3.35.0 declares Node.js >= 10 (3.36 and later want >= 21; Debian 12 has 18).
AZURITE_VERSION=3.35.0
AZURITE_DIR=/opt/targets-test/azurite
VENV="${VENV:-$here/../.venv}"

# -- Node.js and npm.
need=()
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if ((${#need[@]})); then
  [ "$(id -u)" = 0 ] || cannot "missing ${need[*]}; run as root to have them installed"
  command -v apt-get >/dev/null || cannot "missing ${need[*]} and no apt-get to install them"
  say "installing: ${need[*]}"
  # shellcheck source=apt-install.sh
  source "$here/apt-install.sh"
  apt_install "${need[@]}" || cannot "apt-get install ${need[*]} failed"
fi

# -- Azurite.
installed=$(node -e "try{console.log(require('$AZURITE_DIR/node_modules/azurite/package.json').version)}catch(e){}" 2>/dev/null || true)
if [ "$installed" != "$AZURITE_VERSION" ]; then
  mkdir -p "$AZURITE_DIR" 2>/dev/null || cannot "cannot create $AZURITE_DIR (run as root)"
  say "installing azurite@$AZURITE_VERSION into $AZURITE_DIR"
  log=$(mktemp)
  if ! npm install --prefix "$AZURITE_DIR" --no-audit --no-fund --loglevel=error \
    "azurite@$AZURITE_VERSION" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    cannot "npm install azurite@$AZURITE_VERSION failed"
  fi
  rm -f "$log"
fi
[ -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ] || cannot "azurite-blob is missing after the install"

# -- moto's S3 server, in the suite's virtualenv.
if [ -x "$VENV/bin/python" ]; then
  if [ ! -x "$VENV/bin/moto_server" ]; then
    say "installing moto[server] into $VENV"
    "$VENV/bin/python" -m pip install --quiet 'moto[server]>=5' || cannot "pip install moto[server] failed"
  fi
  if [ ! -x "$VENV/bin/gcp-storage-emulator" ]; then
    say "installing gcp-storage-emulator into $VENV"
    "$VENV/bin/python" -m pip install --quiet 'gcp-storage-emulator>=2024.1' || cannot "pip install gcp-storage-emulator failed"
  fi
else
  say "no virtualenv at $VENV yet: moto[server] and gcp-storage-emulator come with pip install -e '.[test]'"
fi
say "azurite $AZURITE_VERSION, moto_server and gcp-storage-emulator are installed"
