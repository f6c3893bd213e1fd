#!/usr/bin/env bash
# Runs every viewsync test: go vet, staticcheck and gofmt, the browser
# client's unit tests (node --test) and type check (tsc --noEmit --checkJs),
# the whole Go suite under the race detector (the real-browser tests in
# e2e/browser included), then each fuzz target for a short, bounded time.
# Installs what the tests need when it is missing: a C compiler for -race,
# Chromium for the browser tests, Node.js for the client's tests, npm for
# TypeScript (installed into client/node_modules from client/package-lock.json),
# PostgreSQL for pgsource's tests (which run throw-away clusters of their own).
#
#   ./scripts/test.sh              everything
#   FUZZTIME=30s ./scripts/test.sh longer fuzzing (default 5s per target; 0 skips fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v go >/dev/null || { echo "test.sh: Go is required (https://go.dev/dl/)" >&2; exit 1; }
command -v gcc >/dev/null || need_apt+=(gcc libc6-dev)
# e2e/browser drives Chromium; it fails (never skips) without it.
[ -x /usr/bin/chromium ] || command -v chromium >/dev/null || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
# pgsource's tests start their own PostgreSQL clusters with initdb; they
# fail (never skip) without it.
if ! { command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; } && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  need_apt+=(postgresql)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]} (gcc: go test -race; chromium: e2e/browser; nodejs, npm: client tests; postgresql: pgsource)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

echo "== go vet"
go vet ./...
echo "== staticcheck"
go tool staticcheck ./...
echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "test.sh: not gofmt-formatted: $unformatted" >&2
  exit 1
fi

# The client's devDependencies at the versions client/package-lock.json
# pins — TypeScript; React, Vue and React's types for the bindings' tests;
# esbuild, which e2e/browser bundles its apps with — installed there
# (npm ci) when one is missing or another version.
if ! node -e '
  const lock = require("./client/package-lock.json").packages;
  for (const d of Object.keys(require("./client/package.json").devDependencies)) {
    let got = "missing";
    try { got = require("./client/node_modules/" + d + "/package.json").version; } catch {}
    if (got !== lock["node_modules/" + d].version) { console.log("test.sh: client/node_modules: " + d + " " + got + ", want " + lock["node_modules/" + d].version); process.exit(1); }
  }'; then
  echo "test.sh: installing client/'s devDependencies (npm ci)"
  (cd client && npm ci --no-audit --no-fund --loglevel=error)
fi

# The browser client's unit tests. TAP output, whose closing "# pass N" and
# "# fail N" lines are counted into the summary.
NODE_LOG=$(mktemp -t viewsync-node-test.XXXXXX.log)
echo "== node --test client/test/ (full log: $NODE_LOG)"
node_status=0
node --test --test-reporter=tap client/test/ >"$NODE_LOG" 2>&1 || node_status=$?
tap_count() { sed -n "s/^# $1 \([0-9][0-9]*\)\$/\1/p" "$NODE_LOG" | tail -n 1; }
node_passed=$(tap_count pass); node_passed=${node_passed:-0}
node_failed=$(tap_count fail); node_failed=${node_failed:-0}
node_cancelled=$(tap_count cancelled); node_failed=$((node_failed + ${node_cancelled:-0}))
if [ "$node_status" -ne 0 ] && [ "$node_failed" -eq 0 ]; then
  node_failed=1 # it failed before counting (a syntax error, no tests found)
fi
echo "client: $node_passed passed, $node_failed failed"
if [ "$node_status" -ne 0 ]; then
  echo "== client test failures"
  grep -E -A30 '^\s*not ok' "$NODE_LOG" | head -n 200 || tail -n 40 "$NODE_LOG"
  echo "test.sh: node --test client/test/ failed (exit $node_status); full log in $NODE_LOG" >&2
fi

# The client's modules checked against viewsync.d.ts (and the bindings
# against theirs), with the TypeScript installed above.
echo "== tsc --noEmit --checkJs -p client"
tsc=client/node_modules/.bin/tsc
tsc_status=0
"$tsc" --noEmit --checkJs -p client || tsc_status=$?
if [ "$tsc_status" -ne 0 ]; then
  node_failed=$((node_failed + 1))
  echo "test.sh: tsc found type errors in client/ (exit $tsc_status)" >&2
else
  node_passed=$((node_passed + 1))
  echo "client: type check passed"
fi

LOG=${TEST_LOG:-$(mktemp -t viewsync-test.XXXXXX.log)}
echo "== go test -race (full log: $LOG)"
status=0
CGO_ENABLED=1 go test -race -count=1 -timeout 20m -v ./... >"$LOG" 2>&1 || status=$?
grep -E '^(ok|FAIL|panic:)' "$LOG" || true
passed=$(grep -cE '^\s*--- PASS' "$LOG" || true)
failed=$(grep -cE '^\s*--- FAIL' "$LOG" || true)
passed=$((passed + node_passed))
failed=$((failed + node_failed))
if [ "$status" -ne 0 ]; then
  echo "== failures"
  grep -E -B3 -A40 -- '--- FAIL|^panic:' "$LOG" | head -n 400 || true
  echo "test.sh: go test failed (exit $status); full log in $LOG" >&2
  echo "tests: $passed passed, $failed failed"
  exit "$status"
fi
if [ "$node_status" -ne 0 ]; then
  echo "tests: $passed passed, $failed failed"
  exit "$node_status"
fi
if [ "$tsc_status" -ne 0 ]; then
  echo "tests: $passed passed, $failed failed"
  exit "$tsc_status"
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
