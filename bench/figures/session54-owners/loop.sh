#!/bin/bash
# creates at c=16 and c=64 on SQLite: 16-byte keys as built (K, e8c3327)
# against the same with scratch-owners.patch (O: no lookups_subject_id and
# no foreign key, one row a customer holding its keys instead); order
# alternates each round. BINDIR holds custos-k16 and custos-owners.
BINDIR=$(realpath "${BINDIR:?set BINDIR}"); cd "$(dirname "$0")"; mkdir -p "${OUT:-.}"; cd "${OUT:-.}"
run() { $BINDIR/$1 bench -subjects 2000 -duration 5s -workloads create -c 16,64 -json $2.json > $2.txt 2>&1; }
for i in 1 2 3 4 5 6; do
  if [ $((i % 2)) = 1 ]; then run custos-k16 K$i; run custos-owners O$i
  else run custos-owners O$i; run custos-k16 K$i; fi
done
echo done > loop.done
