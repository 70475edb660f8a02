#!/usr/bin/env bash
# Installs what the browser test of `agentrl view` (tests/view/test_view_browser.py) drives:
# Debian's Chromium at /usr/bin/chromium, when it is missing. Playwright itself comes with the
# test extra (pip install -e '.[test]'); its own browser download is not used. Debian, as root.
# CI runs it before the test command; running it again changes nothing.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup_browser: run as root to install chromium" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
fi
echo "setup_browser: $(/usr/bin/chromium --version 2>/dev/null)"
