#!/bin/bash
# beside.sh BIN OUT: reads and lookups on a node beside another process
# updating its own customers of the same database at c=1.
BIN=$1; OUT=$2
db=s52b_$RANDOM$RANDOM; createdb -h 127.0.0.1 -U postgres $db
data=$(mktemp -d)
url="postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
$BIN bench -data $data -store "$url" -migrate -subjects 1000 -duration 60s -workloads update -c 1 -json $OUT.U.json > $OUT.U.txt 2>&1 &
up=$!
sleep 66
$BIN bench -data $data -store "$url" -migrate -subjects 5000 -duration 5s -prime -workloads read,lookup -c 16,64 -json $OUT.json > $OUT.txt 2>&1
wait $up
dropdb -h 127.0.0.1 -U postgres --force $db
rm -rf $data
