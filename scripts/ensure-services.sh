#!/usr/bin/env bash
# Make sure the real Redis and PostgreSQL the integration tests use answer.
# Starts local ones if they are installed but stopped; otherwise says what to install.
# Also installs Debian's chromium for the dashboard's browser test when it can (root + apt-get).
set -euo pipefail

REDIS_HOST=127.0.0.1 REDIS_PORT=6379 PG_HOST=127.0.0.1 PG_PORT=5432

redis_up() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
pg_up() { pg_isready -h "$PG_HOST" -p "$PG_PORT" -q 2>/dev/null; }

wait_for() { # name check-fn
  for _ in $(seq 1 50); do "$2" && return 0; sleep 0.2; done
  echo "error: $1 did not come up" >&2; return 1
}

if ! command -v redis-cli >/dev/null || ! command -v redis-server >/dev/null; then
  echo "error: Redis is not installed. Install it (Debian: apt-get install redis-server) and re-run." >&2; exit 1
fi
if ! redis_up; then
  echo "starting Redis on $REDIS_HOST:$REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no >/dev/null
  wait_for Redis redis_up
fi

if ! command -v pg_isready >/dev/null; then
  echo "error: PostgreSQL is not installed. Install it (Debian: apt-get install postgresql) with trust auth for user postgres on 127.0.0.1, and re-run." >&2; exit 1
fi
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL on $PG_HOST:$PG_PORT"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    wait_for PostgreSQL pg_up
  else
    echo "error: PostgreSQL is not answering on $PG_HOST:$PG_PORT and no local cluster to start was found." >&2; exit 1
  fi
fi
# The tests create one database per test through the `test` database.
if ! psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d test -tAc 'select 1' >/dev/null 2>&1; then
  psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -tAc 'create database test' >/dev/null
fi
echo "services: Redis and PostgreSQL are up"

# The dashboard's browser test (e2e/dashboard) drives Debian's chromium
# through playwright-core, which never downloads a browser of its own.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium (the dashboard's browser test)"
    log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$log" 2>&1; then
      tail -n 20 "$log" >&2
      echo "warning: could not install chromium: the dashboard's browser test will fail under NEXUS_REQUIRE_BROWSER=1, and be skipped otherwise" >&2
    fi
    rm -f "$log"
  else
    echo "note: chromium is not installed: the dashboard's browser test is skipped (Debian: apt-get install chromium, as root)"
  fi
fi
