#!/usr/bin/env bash
# Start gateway and worker in the background (after setup) and wait until /health is ok.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
mkdir -p "$RUN_DIR" "$LOG_DIR"

start() {  # name, command...
  local name=$1; shift
  if [ -f "$RUN_DIR/$name.pid" ] && kill -0 "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null; then
    info "$name already running (pid $(cat "$RUN_DIR/$name.pid"))"; return
  fi
  if [ "$name" = inference ] || [ "$name" = egress ]; then
    nohup "$@" >>"$LOG_DIR/$name.log" 2>&1 &
  else  # our services write JSON lines to logs/NAME.log, rotated; NAME.out keeps what comes before logging starts
    nohup env SPARKPILOT_LOG_FILE="$LOG_DIR/$name.log" "$@" >>"$LOG_DIR/$name.out" 2>&1 &
  fi
  echo $! > "$RUN_DIR/$name.pid"
  info "started $name (pid $!, log logs/$name.log)"
}

host="$(setting host)"; port="$(setting port)"
start inference "$PY" -m services.inference.serve
start egress "$PY" -m services.egress  # Squid: the browser's only way out (workspace/egress/access.log: every request)
# --no-proxy-headers: no client may claim another address with X-Forwarded-For (the per-IP rate limit keys on it).
start gateway "$VENV/bin/uvicorn" services.gateway.main:app --host "$host" --port "$port" --no-proxy-headers
start worker "$VENV/bin/celery" -A services.worker.celery_app worker -n "worker@%h"  # queue, concurrency, log level: settings
start trainer "$VENV/bin/celery" -A services.trainer.celery_app worker -n "trainer@%h"

url="http://$host:$port"
info "waiting for $url/health (vLLM's first start takes a minute or two)"
for _ in $(seq 600); do
  if "$PY" - "$url" <<'PYEOF' 2>/dev/null; then
import sys, httpx
r = httpx.get(sys.argv[1] + "/health", timeout=2).json()
sys.exit(0 if r["status"] == "ok" else 1)
PYEOF
    echo
    info "Sparkpilot is up: $url  (dashboard at $url/)"
    info "admin token: SPARKPILOT_ADMIN_TOKEN in $ROOT/.env"
    exit 0
  fi
  sleep 1
done
curl -s "$url/health" || true
die "stack did not become healthy in 600 s; see logs/gateway.log, logs/worker.log, logs/trainer.log and logs/inference.log"
