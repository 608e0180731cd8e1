#!/bin/bash
# PostgreSQL read steps primed and not, alternating, each on a fresh database.
for i in 1 2; do
  for mode in cold prime; do
    db=s60_${mode}_$i
    psql postgres://postgres@127.0.0.1:5432/postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
    flag=; [ $mode = prime ] && flag=-prime
    /work/s60/custos bench -store "postgres://postgres@127.0.0.1:5432/$db?sslmode=disable" -migrate -subjects 10000 -c 16,64 -duration 5s -workloads read $flag -quiet -json $mode$i.json > $mode$i.txt 2>&1
    psql postgres://postgres@127.0.0.1:5432/postgres -qc "DROP DATABASE $db" >/dev/null
  done
done
echo done > loop.done
