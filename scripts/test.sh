#!/usr/bin/env bash
# Install what the tests need, then run the whole suite (extra args go to pytest).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
"$ROOT/scripts/setup.sh" --test
command -v redis-server >/dev/null || apt_install redis-server  # the Redis-outage test starts its own
source "$ROOT/scripts/test_postgres.sh"  # a PostgreSQL for the tests, started if none answers
exec "$PY" -m pytest "$@"
