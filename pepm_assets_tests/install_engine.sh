#!/usr/bin/env bash
# Installs what the multi-host engine test needs (docs/multihost.md), idempotently, saying what it does:
#   Debian: postgresql (initdb, postgres, pg_isready, createdb), redis-server (the Celery broker)
#   PyPI:   dagster-postgres + dagster-celery[redis], the pair that ships with dagster 1.13.27,
#           into the venv given as $1 or $PEPM_ENGINE_VENV (default: the checkout's .venv).
# CI runs it as root with apt. Without apt (or without root/sudo) it installs no system package,
# says so and still exits 0: the engine test then skips, printing what is missing.
# `pip install --dry-run` of these pins into pepm's .venv adds packages only (celery 5.7, kombu,
# redis, psycopg2-binary…) and changes no installed version (checked 2026-12-02).
set -uo pipefail
cd "$(dirname "$0")/.."

PY_PINS=("dagster-postgres==0.29.27" "dagster-celery[redis]==0.29.27")
DEB_PKGS=(postgresql redis-server)
VENV="${1:-${PEPM_ENGINE_VENV:-.venv}}"

say() { echo "install_engine: $*"; }

# --- Debian packages ---------------------------------------------------------------------------
missing=()
for pkg in "${DEB_PKGS[@]}"; do
  if command -v dpkg-query >/dev/null 2>&1 && dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    say "$pkg: already installed"
  else
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    say "apt-get not available: not installing ${missing[*]} (the engine test will skip and say why)"
  else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        say "not root and no passwordless sudo: not installing ${missing[*]} (the engine test will skip and say why)"
        missing=()
      fi
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
      # the test starts its own throw-away cluster: do not let the package create and start `main`
      if [ ! -f /etc/postgresql-common/createcluster.conf ] || ! grep -q '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
        $SUDO mkdir -p /etc/postgresql-common/createcluster.d
        echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/pepm-no-main.conf >/dev/null
      fi
      say "apt-get install ${missing[*]}"
      $SUDO apt-get update -qq || say "apt-get update failed (continuing with the cached lists)"
      if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
        say "apt-get install ${missing[*]} failed (the engine test will skip and say why)"
      fi
      # Debian starts redis-server's own service on install; the test runs its own on a free port
    fi
  fi
fi

# --- Python packages ---------------------------------------------------------------------------
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  say "no Python at $PY (run 'make setup' first, or pass a venv): not installing ${PY_PINS[*]}"
  exit 0
fi
if "$PY" - "${PY_PINS[@]}" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version

for pin in sys.argv[1:]:
    name, want = pin.split("==")
    name = name.split("[")[0]
    try:
        have = version(name)
    except PackageNotFoundError:
        sys.exit(1)
    if have != want:
        sys.exit(1)
import redis  # noqa: F401  (the [redis] extra)
EOF
then
  say "${PY_PINS[*]}: already installed in $VENV"
else
  say "pip install ${PY_PINS[*]} into $VENV"
  if ! "$PY" -m pip install -q "${PY_PINS[@]}"; then
    say "pip install failed (the engine test will skip and say why)"
  fi
fi
exit 0
