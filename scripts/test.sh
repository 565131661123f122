#!/usr/bin/env bash
# Install what the tests need, then run the whole suite (extra args go to pytest).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
"$ROOT/scripts/setup.sh" --test
command -v redis-server >/dev/null || apt_install redis-server  # the Redis-outage test starts its own
exec "$PY" -m pytest "$@"
