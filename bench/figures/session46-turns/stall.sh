#!/bin/bash
# usage: stall.sh BIN TAG — reads at c=16 on the 1M store while `custos retention run`
# (or SECOND, e.g. SECOND='seed -subjects 30000 -records 0 -seed 5 -no-plans') runs in another process
# DATA: a store seeded with custos seed -subjects 1000000 -records 0 -seed 7 -no-plans; OUT: where the files go
# DUR: the read step's length (25s); WALSECS: sample the WAL's size (MiB) each second for that many seconds (session 47)
BIN=$1; TAG=$2; D=${DATA:-/tmp/s46/m1}; cd "${OUT:-/tmp/s46}"
$BIN bench -reuse -data $D -subjects 100000 -c 16 -duration ${DUR:-25s} -workloads read -seed 11 -draw-seed $RANDOM -json stall-$TAG.json -server-log srv-$TAG.log > stall-$TAG.out 2> stall-$TAG.err &
B=$!
until grep -q "bench: ceiling" stall-$TAG.err 2>/dev/null; do sleep 0.2; done
sleep 7
if [ -n "$WALSECS" ]; then
  ( for i in $(seq 1 $WALSECS); do s=$(stat -c %s $D/custos.db-wal 2>/dev/null || echo 0); echo -n "$((s/1048576)) "; sleep 1; done; echo ) > walsizes-$TAG.txt &
fi
T0=$(date +%s.%N)
$BIN ${SECOND:-retention run} -data $D $RETARGS > ret-$TAG.out 2> ret-$TAG.err
T1=$(date +%s.%N)
wait $B
echo "$TAG: ${SECOND:-retention run} $(echo "$T1 - $T0" | bc) s, exit ok"
python3 -c "
import json;r=json.load(open('stall-$TAG.json'))
for s in r['results']:
  if s['workload']=='read': print('  read c=%d: %.0f/s p50 %.2f p95 %.2f p99 %.2f max %.1f ms errors %d' % (s['concurrency'], s['throughput'], s['p50_ms'], s['p95_ms'], s['p99_ms'], s['max_ms'], s['errors']))
"
if [ -n "$WALSECS" ]; then wait; echo "  WAL MiB each second: $(cat walsizes-$TAG.txt)"; fi
