#!/usr/bin/env bash
# Installs what the browser tests (pepm_assets_tests/test_browser_ui.py) need, idempotently, saying
# what it does:
#   Debian: chromium, the headless browser Playwright drives (its own browser download is not used)
#   PyPI:   playwright==1.65.2 (also in the `test` extra), into the venv given as $1 or
#           $PEPM_BROWSER_VENV (default: the checkout's .venv), when `make setup` did not put it there.
# CI runs it as root with apt. Without apt (or root/sudo) it installs nothing, says so and exits 0:
# the browser tests then FAIL, saying to run this script (they never skip). PEPM_CHROMIUM points them
# at another chromium binary.
set -uo pipefail
cd "$(dirname "$0")/.."

PY_PIN="playwright==1.65.2"
VENV="${1:-${PEPM_BROWSER_VENV:-.venv}}"

say() { echo "install_browser: $*"; }

# --- Debian package ----------------------------------------------------------------------------
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  say "chromium: already installed ($(chromium --version 2>/dev/null || echo /usr/bin/chromium))"
elif ! command -v apt-get >/dev/null 2>&1; then
  say "apt-get not available: not installing chromium (the browser tests will fail and say so)"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
      say "not root and no passwordless sudo: not installing chromium (the browser tests will fail and say so)"
      SUDO="none"
    fi
  fi
  if [ "$SUDO" != "none" ]; then
    say "apt-get install chromium"
    $SUDO apt-get update -qq || say "apt-get update failed (continuing with the cached lists)"
    if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium; then
      say "apt-get install chromium failed (the browser tests will fail and say so)"
    fi
  fi
fi

# --- Python package ----------------------------------------------------------------------------
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  say "no Python at $PY (run 'make setup' first, or pass a venv): not installing $PY_PIN"
  exit 0
fi
if "$PY" -c "import sys; from importlib.metadata import version; sys.exit(version('playwright') != '${PY_PIN#*==}')" 2>/dev/null; then
  say "$PY_PIN: already installed in $VENV"
else
  say "pip install $PY_PIN into $VENV"
  "$PY" -m pip install -q "$PY_PIN" || say "pip install failed (the browser tests will fail and say so)"
fi
exit 0
