#!/bin/bash
# The shell against the floor: pairs of a read step at c=16 and 64 on SQLite,
# on the floor (FLOOR, floor.patch: a read's durable audit event alone) and
# on a scratch build that answers a read by id with its id and no audit
# event (SHELL, shell.patch: authentication, routing, the access log line
# and the answer's JSON alone), alternating which runs first.
set -u
SHELL_BIN=${SHELL_BIN:?}; FLOOR=${FLOOR:?}; OUT=${OUT:-.}; PAIRS=${PAIRS:-3}
cd "$OUT"
for i in $(seq 1 $PAIRS); do
  order="floor shell"; [ $((i % 2)) = 0 ] && order="shell floor"
  for b in $order; do
    bin=$FLOOR; [ $b = shell ] && bin=$SHELL_BIN
    $bin bench -subjects 10000 -c 16,64 -duration 10s -workloads read -seed 65 -prime \
      -json sqlite-$b-s$i.json > sqlite-$b-s$i.txt 2>&1
    echo "sqlite $b s$i rc=$?"
  done
done
