#!/usr/bin/env bash
# Runs the web client's browser end-to-end tests (clients/web/e2e/*.test.mjs,
# Node's test runner driving Chromium through playwright-core) against a real
# homeserver: builds the web client (npm run build) and the homeserver and
# CLI binaries into a temporary directory, then runs the tests one file at a
# time. Arguments, if any, are the test files to run (paths relative to
# clients/web, e.g. e2e/app.test.mjs); default: all of them. E2E_NAME, if
# set, runs only the tests whose names match that regular expression (the
# others count as skipped; that run is for development, not CI).
#
# Chromium is required: without /usr/bin/chromium (or $CHROMIUM) this fails —
# the browser tests are never skipped. A skipped or todo test fails the run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fail() { echo "e2etest: $*" >&2; exit 1; }

export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || fail "$CHROMIUM is missing: the browser tests need Debian's chromium (apt-get install chromium), or CHROMIUM=/path/to/chromium. They are not skipped."
command -v go >/dev/null || fail "Go is not installed"
command -v node >/dev/null || fail "Node.js is not installed (need Node.js >= 20.19 and npm)"
command -v npm >/dev/null || fail "npm is not installed"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
	fail "Node.js $(node --version) is too old; need >= 20.19"

cd "$root/clients/web"
# npm ci writes node_modules/.package-lock.json last: without it (or older than
# the lock file) the packages are missing, partly installed or stale.
if [ ! node_modules/.package-lock.json -nt package-lock.json ]; then
	npm ci --no-audit --no-fund
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/privateline-e2e-XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "e2etest: building the web client"
npm run build >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "npm run build failed"; }
echo "e2etest: building the homeserver and the CLI"
(cd "$root" && export CGO_ENABLED=0 && go build -o "$work/homeserver" ./cmd/homeserver && go build -o "$work/privateline" ./cmd/privateline) ||
	fail "go build failed"
export PRIVATELINE_HOMESERVER="$work/homeserver" PRIVATELINE_CLI="$work/privateline"
export E2E_WEB_ROOT="$root/clients/web/dist"

if [ $# -gt 0 ]; then
	files=("$@")
else
	files=(e2e/*.test.mjs)
fi
echo "e2etest: Chromium $("$CHROMIUM" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1), running ${files[*]}"
pattern=()
[ -n "${E2E_NAME:-}" ] && pattern=(--test-name-pattern="$E2E_NAME")
status=0
node --test --test-concurrency=1 "${pattern[@]}" \
	--test-reporter=spec --test-reporter-destination=stdout \
	--test-reporter=tap --test-reporter-destination="$work/tap" \
	"${files[@]}" || status=$?
# The TAP summary's counts: a skip or a todo hides a missing check.
summary=$(grep -E '^# (tests|pass|fail|skipped|skip|todo) ' "$work/tap" | tr '\n' ' ')
if [ "$status" -ne 0 ]; then
	fail "browser tests failed ($summary)"
fi
[ -z "${E2E_NAME:-}" ] && grep -qE '^# (skip|todo) [1-9]' "$work/tap" && fail "a browser test was skipped or left todo ($summary); CI allows none"
grep -qE '^# pass [1-9]' "$work/tap" || fail "no browser test ran ($summary)"
echo "e2etest: all browser tests passed ($summary)"
