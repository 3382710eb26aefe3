#!/usr/bin/env bash
# Runs the web client's unit tests (Vitest) and fails if any test was
# skipped or left as a todo: in CI a skip would hide a missing vector.
set -euo pipefail
cd "$(dirname "$0")/../clients/web"
command -v node >/dev/null || { echo "webtest: Node.js is not installed (need Node.js >= 20.19 and npm)" >&2; exit 1; }
command -v npm >/dev/null || { echo "webtest: npm is not installed" >&2; exit 1; }
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
	{ echo "webtest: Node.js $(node --version) is too old; need >= 20.19" >&2; exit 1; }
# npm ci writes node_modules/.package-lock.json last: without it (or older than
# the lock file) the packages are missing, partly installed or stale.
if [ ! node_modules/.package-lock.json -nt package-lock.json ]; then
	npm ci --no-audit --no-fund
fi
report=$(mktemp)
trap 'rm -f "$report"' EXIT
npx vitest run --reporter=default --reporter=json --outputFile="$report"
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const skipped = r.numPendingTests + r.numTodoTests;
if (r.numFailedTests > 0 || skipped > 0 || r.numTotalTests === 0) {
	console.error(`web unit tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped; CI allows no failure and no skip`);
	process.exit(1);
}
console.log(`all web unit tests passed (${r.numPassedTests} passed, none skipped)`);
' "$report"
