#!/bin/bash
# loop.sh DIR N SCRIPT: pairs A (custos) then B (custos-base)
cd /tmp/s52
for i in $(seq 1 $2); do ./$3 /tmp/s52/custos $1/A$i; ./$3 /tmp/s52/custos-base $1/B$i; done
echo done >> $1/log
