#!/bin/bash
# run-filing.sh BIN OUT MODE: reads and lookups, primed, a fresh database.
# MODE 0: the audit indexes as migrated; 1: dropped; 2: dropped, and
# pgbench files events into audit_keys in chunks of 1,024 six times a
# second meanwhile (the CPU a filing would take, outside the lock).
BIN=$1; OUT=$2; MODE=$3
db=s53f_$RANDOM$RANDOM; createdb -h 127.0.0.1 -U postgres $db
URL="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
data=$(mktemp -d)
$BIN migrate up --store "$URL" > /dev/null
if [ "$MODE" != 0 ]; then psql -q -h 127.0.0.1 -U postgres $db -c "DROP INDEX audit_events_subject_id, audit_events_actor_id, audit_events_action, audit_events_time"; fi
if [ "$MODE" = 2 ]; then
  psql -q -h 127.0.0.1 -U postgres $db -c 'CREATE TABLE audit_keys (key text COLLATE "C" NOT NULL, seq bigint NOT NULL, PRIMARY KEY (key, seq))' -c "CREATE TABLE audit_keys_filed (one int PRIMARY KEY CHECK (one = 1), seq bigint NOT NULL)" -c "INSERT INTO audit_keys_filed VALUES (1, 0)"
  pgbench -n -M prepared -h 127.0.0.1 -U postgres -f "$(dirname "$0")/file_pgb.sql" -c 1 -R 6 -T 600 $db > $OUT.pgbench 2>&1 &
  PGB=$!
fi
$BIN bench -data $data -store "$URL" -migrate -subjects 5000 -duration 5s -prime -workloads read,lookup -c 16,64 -json $OUT.json > $OUT.txt 2>&1
if [ "$MODE" = 2 ]; then
  kill $PGB; wait $PGB
  psql -qAt -h 127.0.0.1 -U postgres $db -c "select (select max(seq) from audit_events) - seq, (select count(*) from audit_keys) from audit_keys_filed" > $OUT.lag
fi
dropdb -h 127.0.0.1 -U postgres --force $db
rm -rf $data
