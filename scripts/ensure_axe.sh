#!/usr/bin/env bash
# Fetch the pinned axe-core (the accessibility rules engine tests/test_accessibility.py runs in
# headless Chromium) from the npm registry into .cache/axe/ (git-ignored) and print the path of its
# axe.min.js. The tarball's sha512 must equal the pin below (the registry's "integrity" field for
# that version, checked here rather than trusted from the registry at fetch time), so a changed or
# corrupted package is refused. Cached: later runs make no request at all.
#
# It never fails scripts/test.sh: when offline, without npm, or on a mismatch it says why on stderr
# and exits 1, test.sh carries on, and the accessibility tests skip with that reason.
# To upgrade: change both lines below to `npm view axe-core@NEW version dist.integrity`.
set -euo pipefail
AXE_VERSION=4.14.1
AXE_INTEGRITY=sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/axe"
DEST="$CACHE/axe-core-$AXE_VERSION"
if [ -s "$DEST/axe.min.js" ]; then
  echo "$DEST/axe.min.js"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "ensure_axe: npm/node not found: cannot fetch axe-core $AXE_VERSION" >&2
  exit 1
fi
mkdir -p "$CACHE"
tmp="$(mktemp -d "$CACHE/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# Our own npm cache and no retries: a fresh machine gets the same result, and offline fails fast.
if ! (cd "$tmp" && timeout 180 npm pack "axe-core@$AXE_VERSION" --loglevel=error --cache "$CACHE/npm-cache" \
      --fetch-retries=1 --fetch-timeout=60000 --no-audit --no-fund >"$tmp/pack.out" 2>"$tmp/pack.err"); then
  echo "ensure_axe: npm pack axe-core@$AXE_VERSION failed (offline?): $(grep -m 2 -i "error" "$tmp/pack.err" | tr '\n' ' ')" >&2
  exit 1
fi
tarball="$tmp/axe-core-$AXE_VERSION.tgz"
if [ ! -f "$tarball" ]; then
  echo "ensure_axe: npm pack wrote no $tarball" >&2
  exit 1
fi
actual="sha512-$(node -e 'process.stdout.write(require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tarball")"
if [ "$actual" != "$AXE_INTEGRITY" ]; then
  echo "ensure_axe: axe-core $AXE_VERSION integrity mismatch: got $actual, pinned $AXE_INTEGRITY" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$tmp" package/axe.min.js package/LICENSE
mkdir -p "$tmp/out"
mv "$tmp/package/axe.min.js" "$tmp/package/LICENSE" "$tmp/out/"
if [ -d "$DEST" ] && [ ! -s "$DEST/axe.min.js" ]; then rm -rf "$DEST"; fi  # a cache dir someone emptied
# The directory appears whole or not at all; a concurrent run (test.sh and the test) may win the race.
mv -T "$tmp/out" "$DEST" 2>/dev/null || [ -s "$DEST/axe.min.js" ]
echo "$DEST/axe.min.js"
