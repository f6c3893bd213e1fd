#!/usr/bin/env bash
# Runs every viewsync test: the whole Go suite under the race detector, then
# each fuzz target for a short, bounded time. Installs what the tests need
# when it is missing (a C compiler for -race).
#
#   ./scripts/test.sh              everything
#   FUZZTIME=30s ./scripts/test.sh longer fuzzing (default 5s per target; 0 skips fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v go >/dev/null || { echo "test.sh: Go is required (https://go.dev/dl/)" >&2; exit 1; }
command -v gcc >/dev/null || need_apt+=(gcc libc6-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]} (needed by go test -race)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

echo "== go vet"
go vet ./...

LOG=${TEST_LOG:-$(mktemp -t viewsync-test.XXXXXX.log)}
echo "== go test -race (full log: $LOG)"
status=0
CGO_ENABLED=1 go test -race -count=1 -timeout 20m -v ./... >"$LOG" 2>&1 || status=$?
grep -E '^(ok|FAIL|panic:)' "$LOG" || true
passed=$(grep -cE '^\s*--- PASS' "$LOG" || true)
failed=$(grep -cE '^\s*--- FAIL' "$LOG" || true)
if [ "$status" -ne 0 ]; then
  echo "== failures"
  grep -E -B3 -A40 -- '--- FAIL|^panic:' "$LOG" | head -n 400 || true
  echo "test.sh: go test failed (exit $status); full log in $LOG" >&2
  echo "tests: $passed passed, $failed failed"
  exit "$status"
fi

FUZZTIME=${FUZZTIME:-5s}
if [ "$FUZZTIME" != "0" ]; then
  echo "== fuzz targets, $FUZZTIME each"
  # Every package with fuzz targets, and every target in it.
  for pkg in $(go list ./...); do
    dir=$(go list -f '{{.Dir}}' "$pkg")
    for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
      echo "-- $pkg $target"
      fuzz() { go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 1000x "$pkg" 2>&1; }
      # Go 1.26's fuzz coordinator can end a clean run with a bare "context
      # deadline exceeded" (golang/go#75804): run once more in that case.
      if ! out=$(fuzz) && ! grep -q 'Failing input written' <<<"$out" && grep -q 'context deadline exceeded' <<<"$out"; then
        echo "   (fuzz runner timed out without a finding; running again)"
        out=$(fuzz) || true
      fi
      if grep -qE '^(FAIL|--- FAIL)' <<<"$out"; then
        echo "$out"
        echo "test.sh: fuzz target $target in $pkg failed" >&2
        echo "tests: $passed passed, 1 failed"
        exit 1
      fi
      echo "$out" | tail -n 1
    done
  done
fi
echo "test.sh: all tests passed"
echo "tests: $passed passed, $failed failed"
