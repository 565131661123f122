#!/usr/bin/env bash
# Stop what scripts/start.sh (make up) started.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for name in trainer worker gateway egress inference redis; do
  f="$RUN_DIR/$name.pid"
  [ -f "$f" ] || continue
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    info "stopped $name (pid $pid)"
  fi
  rm -f "$f"
done
# The tests' private PostgreSQL (scripts/test_postgres.sh), if make test started one.
if [ -f "$RUN_DIR/postgres/postmaster.pid" ]; then
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  as_root runuser -u postgres -- "$bin/pg_ctl" -D "$RUN_DIR/postgres" stop -w >/dev/null && info "stopped the tests' PostgreSQL"
fi
