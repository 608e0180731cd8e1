#!/bin/bash
# loops.sh BIN SERIES: the fifty-third session's interleaved pairs, run
# from this directory. SERIES dropped: A (indexes dropped) against B (as
# migrated); filing-1: F (dropped, pgbench filing meanwhile) then B;
# filing-2: B then F.
BIN=$(realpath "$1"); cd "$(dirname "$0")"
for i in 1 2 3; do
  case $2 in
  dropped) ./run.sh $BIN A$i 1; ./run.sh $BIN B$i 0 ;;
  filing-1) (cd filing-1 && ../run-filing.sh $BIN F$i 2 && ../run-filing.sh $BIN B$i 0) ;;
  filing-2) (cd filing-2 && ../run-filing.sh $BIN B$i 0 && ../run-filing.sh $BIN F$i 2) ;;
  esac
done
