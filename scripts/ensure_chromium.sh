#!/usr/bin/env bash
# Install Debian's chromium (and chromium-driver, for the keyboard test over WebDriver) when missing.
# The page tests skip themselves without a browser, so this script never fails a run: when we are
# not root, apt-get is absent or the install fails, it exits 0 quietly and the tests say why they skip.
set -u
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
[ "${#need[@]}" -eq 0 ] && exit 0
[ "$(id -u)" -eq 0 ] || exit 0
command -v apt-get >/dev/null 2>&1 || exit 0
export DEBIAN_FRONTEND=noninteractive
{
  apt-get update -q && apt-get install -y -q --no-install-recommends "${need[@]}" fonts-dejavu-core
} >/tmp/ensure_chromium.log 2>&1 || true
exit 0
