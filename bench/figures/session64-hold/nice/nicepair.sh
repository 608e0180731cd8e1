#!/bin/sh
# BIN: the custos binary (default /tmp/custos-head, a build of 05443ca this session)
# one step of reads and lookups on PostgreSQL, postgres at nice $1
set -e
for p in $(pgrep -x postgres); do renice -n $1 -p $p >/dev/null; done
psql -h 127.0.0.1 -U postgres -qc "drop database if exists s64n" -c "create database s64n" 2>/dev/null
${BIN:-/tmp/custos-head} bench -store "postgres://postgres@127.0.0.1:5432/s64n?sslmode=disable" -migrate -subjects 10000 -duration 8s -c 16 -seed 3 -prime -workloads read,lookup -json nice$1-$2.json -quiet 2>&1 | tr '\r' '\n' | grep -a "^  *\(ceiling\|read\|lookup\)  *16 "
