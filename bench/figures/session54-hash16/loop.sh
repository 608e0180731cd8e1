#!/bin/bash
# creates and lookups at c=16 and c=64 on SQLite: the head
# before 16-byte blind-index keys (H, 3445362) against the change (K,
# e8c3327); order alternates each round.
# BINDIR holds custos-head and custos-k16 built from those commits; the
# figures go into the directory OUT beside this script (default: here);
# WORKLOADS (default create,lookup) is bench's -workloads.
BINDIR=$(realpath "${BINDIR:?set BINDIR}"); cd "$(dirname "$0")"; mkdir -p "${OUT:-.}"; cd "${OUT:-.}"
run() { $BINDIR/$1 bench -subjects 2000 -duration 5s -workloads "${WORKLOADS:-create,lookup}" -c 16,64 -json $2.json > $2.txt 2>&1; }
for i in 1 2 3 4 5 6; do
  if [ $((i % 2)) = 1 ]; then run custos-head H$i; run custos-k16 K$i
  else run custos-k16 K$i; run custos-head H$i; fi
done
echo done > loop.done
