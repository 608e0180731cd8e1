#!/bin/bash
# usage: stall.sh BIN TAG — reads at c=16 on the 1M store while `custos retention run` runs in another process
BIN=$1; TAG=$2; D=/tmp/s46/m1; cd /tmp/s46
$BIN bench -reuse -data $D -subjects 100000 -c 16 -duration 25s -workloads read -seed 11 -draw-seed $RANDOM -json stall-$TAG.json -server-log srv-$TAG.log > stall-$TAG.out 2> stall-$TAG.err &
B=$!
until grep -q "bench: ceiling" stall-$TAG.err 2>/dev/null; do sleep 0.2; done
sleep 7
T0=$(date +%s.%N)
$BIN seed -data $D -subjects 30000 -records 0 -seed $RANDOM -no-plans > seed-$TAG.out 2> seed-$TAG.err
T1=$(date +%s.%N)
wait $B
echo "$TAG: seed $(echo "$T1 - $T0" | bc) s, exit ok"
python3 -c "
import json;r=json.load(open('stall-$TAG.json'))
for s in r['results']:
  if s['workload']=='read': print('  read c=%d: %.0f/s p50 %.2f p95 %.2f p99 %.2f max %.1f ms errors %d' % (s['concurrency'], s['throughput'], s['p50_ms'], s['p95_ms'], s['p99_ms'], s['max_ms'], s['errors']))
"
