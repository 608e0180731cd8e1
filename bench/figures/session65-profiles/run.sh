#!/bin/bash
# Profiles of the read, lookup and create paths at c=16 on both stores,
# one workload a run, reads and lookups primed; each profile then split by
# bench/cpusplit at the step's rate (*.split.txt).
# BIN: the custos binary (go build -o BIN ./cmd/custos); OUT: where to write.
set -u
BIN=${BIN:?set BIN}; OUT=${OUT:-.}
SPLIT=$(cd "$(dirname "$0")/../../cpusplit" && pwd)
PG=${PG:-postgres://postgres@127.0.0.1:5432/custos_s65prof?sslmode=disable}
cd "$OUT"
for store in sqlite postgres; do
  for w in read lookup create; do
    extra=""; [ $w != create ] && extra="-prime"
    if [ $store = postgres ]; then
      psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS custos_s65prof" -c "CREATE DATABASE custos_s65prof" postgres
      extra="$extra -store $PG -migrate"
    fi
    $BIN bench -subjects 10000 -c 16 -duration 15s -workloads $w -seed 65 $extra \
      -cpuprofile $w-$store-c16.prof -json $w-$store-c16.json > $w-$store-c16.txt 2>&1
    echo "$w $store rc=$?"
    rate=$(python3 -c "import json,sys; print(next(x['throughput'] for x in json.load(open(sys.argv[1]))['results'] if x['workload'] == sys.argv[2]))" $w-$store-c16.json $w)
    prof=$(pwd)/$w-$store-c16.prof
    (cd "$SPLIT" && go run . -rate "$rate" "$prof") > $w-$store-c16.split.txt
  done
done
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS custos_s65prof" postgres
