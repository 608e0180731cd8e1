#!/bin/bash
# dur.sh MODE OUT: reads and lookups, primed, a fresh database, with -read-audit-durability MODE.
MODE=$1; OUT=$2
db=s52d_$RANDOM$RANDOM; createdb -h 127.0.0.1 -U postgres $db
data=$(mktemp -d)
/tmp/s52/custos-head bench -data $data -store "postgres://postgres@127.0.0.1:5432/$db?sslmode=disable" -migrate -subjects 5000 -duration 5s -prime -workloads read,lookup -c 16,64 -read-audit-durability $MODE -json $OUT.json > $OUT.txt 2>&1
dropdb -h 127.0.0.1 -U postgres --force $db
rm -rf $data
