#!/bin/sh
# BIN: the custos binary (default /tmp/custos-head, a build of 05443ca this session)
# one read step on PostgreSQL with pg_stat_wal and pg_stat_database sampled around the measured part
DB=$1
q() { psql -h 127.0.0.1 -U postgres -Atc "select wal_records, wal_fpi, wal_bytes, wal_write, wal_sync, wal_write_time, wal_sync_time, (select xact_commit from pg_stat_database where datname='$DB') from pg_stat_wal"; }
${BIN:-/tmp/custos-head} bench -store "postgres://postgres@127.0.0.1:5432/$DB?sslmode=disable" -migrate -subjects 10000 -duration 12s -c 16 -seed 3 -prime -workloads read -quiet 2>&1 | tr '\r' '\n' | grep -a "^  *\(ceiling\|read\|lookup\)  *16 \|read c=16" &
sleep 30; q; sleep 5; q; wait
