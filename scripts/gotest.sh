#!/usr/bin/env bash
# Runs every Go test with -race and fails if any test was skipped: in CI a
# skip would hide a missing tool or service.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# -timeout: go test's default of 10 minutes per package binary is too tight
# for homeserver's ~120 tests of real servers under -race on a shared
# 2-core machine (583 s measured at load average 6); a hang still ends.
go test -race -count=1 -timeout 30m -v ./... >"$log" 2>&1 || status=$?
grep -E '^(ok|FAIL|---|panic:|\s+\S+_test\.go:[0-9]+:)' "$log" | grep -v -- '--- PASS' || true
if [ "$status" -ne 0 ]; then
	echo "go test failed; the failures:" >&2
	grep -B2 -A30 -E -- '--- FAIL|^panic:|^fatal error:|race detected|DATA RACE' "$log" | head -400 >&2 || true
	# A package can fail without a failing test (a crash, a test binary
	# that exits early): show the end of each failed package's output.
	awk '/^(ok|FAIL|\?)[ \t]/ { if ($1 == "FAIL") { print "--- output before " $0; for (i = n - 60; i < n; i++) if (i >= 0) print buf[i % 60] } n = 0; next } { buf[n % 60] = $0; n++ }' "$log" >&2 || true
	exit "$status"
fi
if grep -q -- '--- SKIP' "$log"; then
	echo "tests were skipped; CI does not allow skips:" >&2
	grep -A3 -- '--- SKIP' "$log" >&2
	exit 1
fi
echo "all Go tests passed ($(grep -c -- '--- PASS' "$log") passed, none skipped)"
