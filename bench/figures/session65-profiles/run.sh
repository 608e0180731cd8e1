#!/bin/bash
# Profiles of the read, lookup and create paths at c=16 on both stores,
# one workload a run, reads and lookups primed; split afterwards by
# bench/cpusplit (README.md).
# BIN: the custos binary (go build -o BIN ./cmd/custos); OUT: where to write.
set -u
BIN=${BIN:?set BIN}; OUT=${OUT:-.}
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
  done
done
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS custos_s65prof" postgres
