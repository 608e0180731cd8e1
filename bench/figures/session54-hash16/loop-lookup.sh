#!/bin/bash
# cached lookups and reads at c=16 and c=64 on SQLite, without creates
# before them: the head (H, 3445362) against 16-byte blind-index keys (K,
# e8c3327); order alternates each round. BINDIR as loop.sh; figures in
# lookup-only/.
BINDIR=$(realpath "${BINDIR:?set BINDIR}"); cd "$(dirname "$0")"; mkdir -p lookup-only; cd lookup-only
run() { $BINDIR/$1 bench -subjects 2000 -duration 5s -workloads lookup,read -c 16,64 -json $2.json > $2.txt 2>&1; }
for i in 1 2 3 4 5 6; do
  if [ $((i % 2)) = 1 ]; then run custos-head H$i; run custos-k16 K$i
  else run custos-k16 K$i; run custos-head H$i; fi
done
echo done > loop.done
