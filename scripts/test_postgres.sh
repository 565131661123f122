#!/usr/bin/env bash
# Make sure the PostgreSQL the tests use answers (sourced by scripts/test.sh, after setup.sh).
# If SPARKPILOT_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test) does not answer,
# install PostgreSQL if needed and start a private, trust-auth cluster for the tests in .run/postgres,
# on that URL's port, creating its database. Any failure is printed loudly; the tests then report the
# PostgreSQL cases as skipped in their summary rather than pass silently on SQLite alone.
pg_url="${SPARKPILOT_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
export SPARKPILOT_TEST_POSTGRES_URL="$pg_url"
pg_answers() { "$PY" -c "import psycopg,sys; psycopg.connect(sys.argv[1].replace('+psycopg', ''), connect_timeout=2).close()" "$1" 2>/dev/null; }

start_test_postgres() {
  local port db bin data
  port="$("$PY" -c "from urllib.parse import urlsplit; import sys; print(urlsplit(sys.argv[1]).port or 5432)" "$pg_url")"
  db="${pg_url##*/}"
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  if [ -z "$bin" ]; then apt_install postgresql; bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"; fi
  [ -x "$bin/initdb" ] || { warn "PostgreSQL binaries not found after installing"; return 1; }
  id postgres >/dev/null 2>&1 || as_root useradd --system --home-dir /var/lib/postgresql postgres
  data="$RUN_DIR/postgres"
  as_root mkdir -p "$data"
  as_root chown postgres "$data" && as_root chmod 700 "$data"
  chmod o+x "$RUN_DIR" 2>/dev/null || true
  if [ ! -f "$data/PG_VERSION" ]; then
    info "creating a PostgreSQL cluster for the tests in $data (trust auth, 127.0.0.1 only)"
    as_root runuser -u postgres -- "$bin/initdb" -D "$data" -A trust -U postgres >/dev/null
  fi
  info "starting PostgreSQL on 127.0.0.1:$port for the tests"
  as_root runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -c listen_addresses=127.0.0.1 -k /tmp" start >/dev/null
  "$PY" -c "import psycopg,sys; c=psycopg.connect(sys.argv[1], autocommit=True); c.execute(f'CREATE DATABASE \"{sys.argv[2]}\"')" \
    "postgresql://postgres@127.0.0.1:$port/postgres" "$db" 2>/dev/null || true
}

if ! pg_answers "$pg_url"; then
  start_test_postgres || true
  if ! pg_answers "$pg_url"; then
    warn "################################################################################"
    warn "PostgreSQL does not answer at $pg_url and could not be started here:"
    warn "every PostgreSQL case of the suite will be SKIPPED (listed at the end of the run)."
    warn "################################################################################"
  fi
fi
