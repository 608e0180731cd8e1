#!/bin/bash
# loopr.sh DIR N SCRIPT: pairs B (custos-base) then A (custos)
cd /tmp/s52
for i in $(seq 1 $2); do ./$3 /tmp/s52/custos-base $1/B$i; ./$3 /tmp/s52/custos $1/A$i; done
echo done >> $1/log
