#!/usr/bin/env bash
# Make Debian's Chromium available for the browser test of the rendered book (never a downloaded browser).
# Installs it with apt-get when it is absent and we are root; otherwise says how, and the test is skipped.
set -uo pipefail
for c in /usr/bin/chromium /usr/bin/chromium-browser /usr/bin/google-chrome; do
  [ -x "$c" ] && exit 0
done
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: installing Debian's chromium for the browser test" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null && exit 0
  echo "ensure_chromium: apt-get install chromium failed; the browser test will be skipped" >&2
else
  echo "ensure_chromium: no chromium; 'sudo apt-get install chromium' enables the browser test" >&2
fi
exit 0
