#!/bin/bash
# The chaining statement (postgres/serverchain.go, as the fifty-third session wrote it out
# for five events) against plain.sql, the same five events inserted after the head with
# their hashes given, as a node that chained them itself would send them (sixty-fourth
# session). Both commit with synchronous_commit off, so the flush is not measured.
#
#   run.sh [ROUNDS]   (3: alternating rounds of 8 s each, on a 300,000-event table)
set -euo pipefail
cd "$(dirname "$(realpath "$0")")"
s53=../session53-pg-audit-indexes
PG="-h 127.0.0.1 -U postgres"
pgbench=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)
psql $PG -qc "DROP DATABASE IF EXISTS chain64" -c "CREATE DATABASE chain64"
trap 'psql $PG -qc "DROP DATABASE IF EXISTS chain64"' EXIT
psql $PG -d chain64 -q -f $s53/setup.sql -f $s53/idx.sql -c "VACUUM ANALYZE audit_events"
for r in $(seq 1 "${1:-3}"); do
  for f in $s53/chain.sql plain.sql; do
    "$pgbench" $PG -n -M prepared -c 1 -T 8 -f "$f" chain64 2>&1 |
      awk -v f="$(basename "$f" .sql)" -v r="$r" '/latency average/ {print r, f, $4, "ms"}'
  done
done
