#!/bin/bash
# PostgreSQL's own time for each message of a primed read step at c=16 (sixty-fourth
# session): log_min_duration_statement = 0 on a new database for the run, then the log's
# durations summed by message (parse, bind, execute) and statement's first words.
#
#   statements.sh [DB]   (BIN: the custos binary, default /tmp/custos-head; run as a user
#                         who may read PostgreSQL's log, LOG: its path)
set -euo pipefail
db=${1:-stmts_64} bin=${BIN:-/tmp/custos-head}
log=${LOG:-$(ls /var/log/postgresql/postgresql-*-main.log | tail -1)}
PG="-h 127.0.0.1 -U postgres"
psql $PG -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" -c "ALTER DATABASE $db SET log_min_duration_statement = 0"
trap 'psql $PG -qc "DROP DATABASE IF EXISTS $db"' EXIT
start=$(wc -c < "$log")
"$bin" bench -store "postgres://postgres@127.0.0.1:5432/$db?sslmode=disable" -migrate -subjects 10000 -duration 5s \
  -c 16 -seed 3 -prime -workloads read -quiet 2>&1 | tr '\r' '\n' | grep -a "^  *\(ceiling\|read\)  *16 "
tail -c +$((start + 1)) "$log" | grep -a "LOG:  duration:" |
  sed -E 's/.*duration: ([0-9.]+) ms  (parse|bind|execute|statement)( [^:]*)?: ?(.{0,50}).*/\2|\4|\1/' |
  awk -F'|' '{k=$1" "$2; n[k]++; s[k]+=$3} END {for (k in n) printf "%8d %9.3f ms avg %10.1f ms total  %s\n", n[k], s[k]/n[k], s[k], k}' |
  sort -k4 -rn | head -14
