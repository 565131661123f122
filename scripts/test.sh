#!/usr/bin/env bash
# Install what the tests need, then run the whole suite (extra args go to pytest).
# Prints minutes per tier (tests/conftest.py) and the 30 slowest tests; writes JUnit XML to artifacts/junit.xml.
#   scripts/test.sh                 every tier (what CI runs)
#   scripts/test.sh --fast          the tiers that need no stack and no model: unit, db, browser (the inner loop)
# Tests run in SPARKPILOT_TEST_PROCESSES pytest processes (pytest-xdist, default 2): every test that needs the
# real model in one of them (one vLLM), the other modules whole, wherever a process is free; `-n 0` runs serially.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
select=()
if [ "${1:-}" = "--fast" ]; then shift; select=(-m "unit or db or browser"); fi
"$ROOT/scripts/setup.sh" --test
command -v redis-server >/dev/null || apt_install redis-server  # the Redis-outage test starts its own
source "$ROOT/scripts/test_postgres.sh"  # a PostgreSQL for the tests, started if none answers
mkdir -p "$ROOT/artifacts"
exec "$PY" -m pytest "${select[@]}" -n "${SPARKPILOT_TEST_PROCESSES:-2}" --dist loadgroup \
  --durations=30 --durations-min=1 --junitxml="$ROOT/artifacts/junit.xml" "$@"
