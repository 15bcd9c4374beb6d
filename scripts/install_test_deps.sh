#!/bin/sh
# System packages the test suite uses: Debian's chromium (tests/test_report_browser.py renders the
# audit report in a real headless browser). Installs only when chromium is missing and we are root;
# otherwise says what to install. Safe to run repeatedly (the Makefile's test target calls it).
set -eu

if command -v chromium >/dev/null 2>&1; then
    echo "install_test_deps: chromium present ($(command -v chromium))"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_test_deps: chromium is not on PATH and this is not root; install it with" >&2
    echo "    sudo apt-get update && sudo apt-get install -y chromium" >&2
    echo "(tests/test_report_browser.py is skipped without it)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_test_deps: no apt-get here; install a Chromium that provides 'chromium' on PATH" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends chromium
echo "install_test_deps: installed $(chromium --version 2>/dev/null || echo chromium)"
