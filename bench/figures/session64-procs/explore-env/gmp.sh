#!/bin/sh
# BIN: the custos binary (default /tmp/custos-head, a build of 05443ca this session)
# one primed read and lookup step at c=16 on PostgreSQL with GOMAXPROCS=$1
psql -h 127.0.0.1 -U postgres -qc "drop database if exists s64g" -c "create database s64g" 2>/dev/null
GOMAXPROCS=$1 ${BIN:-/tmp/custos-head} bench -store "postgres://postgres@127.0.0.1:5432/s64g?sslmode=disable" -migrate -subjects 10000 -duration 6s -c 16 -seed 3 -prime -workloads ${WL:-read,lookup} -json gmp$1-${WL:-rl}-$2.json -quiet 2>&1 | tr '\r' '\n' | grep -a "^  *\(ceiling\|read\|lookup\)  *16 " | awk -v g=$1 '{print "GOMAXPROCS=" g, $1, $4, $12}'
