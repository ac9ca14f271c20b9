#!/usr/bin/env bash
# Start the local PostgreSQL and Redis the tests talk to, if they are installed and not up.
set -euo pipefail

if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null; then
    echo "starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  fi
fi

if command -v redis-cli >/dev/null && ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null; then
    echo "starting Redis" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  fi
fi

for _ in $(seq 1 30); do
  if ! command -v pg_isready >/dev/null || pg_isready -q -h 127.0.0.1 -p 5432; then
    exit 0
  fi
  sleep 1
done
echo "PostgreSQL at 127.0.0.1:5432 did not come up" >&2
exit 1
