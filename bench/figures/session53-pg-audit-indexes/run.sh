#!/bin/bash
# run.sh BIN OUT DROP: reads and lookups, primed, a fresh database; DROP=1 drops the audit log's four secondary indexes first.
BIN=$1; OUT=$2; DROP=$3
db=s53n_$RANDOM$RANDOM; createdb -h 127.0.0.1 -U postgres $db
URL="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
data=$(mktemp -d)
$BIN migrate up --store "$URL" > /dev/null
if [ "$DROP" = 1 ]; then psql -q -h 127.0.0.1 -U postgres $db -c "DROP INDEX audit_events_subject_id, audit_events_actor_id, audit_events_action, audit_events_time"; fi
$BIN bench -data $data -store "$URL" -migrate -subjects 5000 -duration 5s -prime -workloads read,lookup -c 16,64 -json $OUT.json > $OUT.txt 2>&1
psql -qAt -h 127.0.0.1 -U postgres $db -c "select count(*) from pg_indexes where tablename='audit_events'" > $OUT.idx
dropdb -h 127.0.0.1 -U postgres --force $db
rm -rf $data
