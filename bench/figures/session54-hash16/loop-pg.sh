#!/bin/bash
# creates at c=16 and c=64 on PostgreSQL: the head (H, 3445362) against
# 16-byte blind-index keys with migration 0014's constraint (K, e8c3327);
# each run in a database of its own, dropped after; order alternates each
# round. BINDIR as loop.sh; figures in pg/ (PGOUT: another directory).
BINDIR=$(realpath "${BINDIR:?set BINDIR}"); cd "$(dirname "$0")"; mkdir -p "${PGOUT:-pg}"; cd "${PGOUT:-pg}"
run() {
  dropdb -h 127.0.0.1 -U postgres --if-exists s54pg; createdb -h 127.0.0.1 -U postgres s54pg
  $BINDIR/$1 bench -data "$(mktemp -d)" -store "postgres://postgres@127.0.0.1:5432/s54pg?sslmode=disable" -migrate \
    -subjects 2000 -duration 5s -workloads create -c 16,64 -json $2.json > $2.txt 2>&1
}
for i in 1 2 3 4 5 6; do
  if [ $((i % 2)) = 1 ]; then run custos-head H$i; run custos-k16 K$i
  else run custos-k16 K$i; run custos-head H$i; fi
done
dropdb -h 127.0.0.1 -U postgres --if-exists s54pg
echo done > loop.done
