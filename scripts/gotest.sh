#!/usr/bin/env bash
# Runs every Go test with -race and fails if any test was skipped: in CI a
# skip would hide a missing tool or service.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
go test -race -count=1 -v ./... >"$log" 2>&1 || status=$?
grep -E '^(ok|FAIL|---|panic:|\s+\S+_test\.go:[0-9]+:)' "$log" | grep -v -- '--- PASS' || true
if [ "$status" -ne 0 ]; then
	echo "go test failed; full output:" >&2
	grep -B2 -A30 -E -- '--- FAIL|^panic:|race detected' "$log" | head -400 >&2 || true
	exit "$status"
fi
if grep -q -- '--- SKIP' "$log"; then
	echo "tests were skipped; CI does not allow skips:" >&2
	grep -A3 -- '--- SKIP' "$log" >&2
	exit 1
fi
echo "all Go tests passed ($(grep -c -- '--- PASS' "$log") passed, none skipped)"
