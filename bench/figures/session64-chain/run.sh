#!/bin/bash
# The chaining statement (postgres/serverchain.go, as the fifty-third session wrote it out
# for five events) against the same five events inserted after the head with their hashes
# given, as a node that chained them itself would send them (sixty-fourth session): that
# session's chain.sql up to its head, then plain-tail.sql. Both commit with
# synchronous_commit off, so the flush is not measured.
#
#   run.sh [ROUNDS]   (3: alternating rounds of 8 s each, on a 300,000-event table)
set -euo pipefail
cd "$(dirname "$(realpath "$0")")"
s53=../session53-pg-audit-indexes
PG="-h 127.0.0.1 -U postgres"
pgbench=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)
psql $PG -qc "DROP DATABASE IF EXISTS chain64" -c "CREATE DATABASE chain64"
plain=$(mktemp --suffix .sql)
trap 'psql $PG -qc "DROP DATABASE IF EXISTS chain64"; rm -f "$plain"' EXIT
sed '/^), head AS ($/,$d' $s53/chain.sql | cat - plain-tail.sql > "$plain"
psql $PG -d chain64 -q -f $s53/setup.sql -f $s53/idx.sql -c "VACUUM ANALYZE audit_events"
for r in $(seq 1 "${1:-3}"); do
  for f in $s53/chain.sql "$plain"; do
    "$pgbench" $PG -n -M prepared -c 1 -T 8 -f "$f" chain64 2>&1 |
      awk -v f="$([ "$f" = "$plain" ] && echo plain || echo chain)" -v r="$r" '/latency average/ {print r, f, $4, "ms"}'
  done
done
