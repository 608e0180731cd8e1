#!/bin/sh
# one primed read and lookup step at c=16 on PostgreSQL with binary $1, report $2
psql -h 127.0.0.1 -U postgres -qc "drop database if exists check_64" -c "create database check_64" 2>/dev/null
"$1" bench -store "postgres://postgres@127.0.0.1:5432/check_64?sslmode=disable" -migrate -subjects 10000 -duration 5s -c 16 -seed 3 -prime -workloads read,lookup -json "$2.json" -quiet > "$2.txt" 2>&1
psql -h 127.0.0.1 -U postgres -qc "drop database if exists check_64" 2>/dev/null
