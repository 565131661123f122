#!/usr/bin/env bash
# Install what the tests need, then run the whole suite (extra args go to pytest).
# Prints minutes per tier (tests/conftest.py) and the 30 slowest tests; writes JUnit XML to artifacts/junit.xml.
#   scripts/test.sh                 every tier (what CI runs)
#   scripts/test.sh --fast          the tiers that need no stack and no model: unit, db, browser (the inner loop)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
select=()
if [ "${1:-}" = "--fast" ]; then shift; select=(-m "unit or db or browser"); fi
"$ROOT/scripts/setup.sh" --test
command -v redis-server >/dev/null || apt_install redis-server  # the Redis-outage test starts its own
source "$ROOT/scripts/test_postgres.sh"  # a PostgreSQL for the tests, started if none answers
mkdir -p "$ROOT/artifacts"
exec "$PY" -m pytest "${select[@]}" --durations=30 --durations-min=1 --junitxml="$ROOT/artifacts/junit.xml" "$@"
