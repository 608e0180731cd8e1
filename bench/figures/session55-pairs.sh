#!/bin/bash
# Pairs of `custos bench` runs of two builds on fresh SQLite stores, alternating
# which runs first (the fifty-fifth session's series).
#
#   BINDIR=DIR session55-pairs.sh OUT ROUNDS WORKLOADS X=binx Y=biny
#
# DIR/binx and DIR/biny are the builds. Round i writes OUT/Xi.json and OUT/Yi.json
# (and .txt); odd rounds run X first, even rounds Y first; OUT/compare-Y.txt is
# `custos bench -compare Y1.json,… -base X1.json,…`. It is rounds.sh with the two
# builds named in the other order, which gives this order of runs, and X its base.
set -euo pipefail
BASE=${4%%=*} exec "$(dirname "$0")/rounds.sh" "$1" "$2" "$3" "$5" "$4"
