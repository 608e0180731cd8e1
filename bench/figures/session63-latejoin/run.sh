#!/bin/bash
# What the late join (postgres/latejoin.go) buys a fresh PostgreSQL store's read and
# lookup steps, as in a whole run (sixty-third session): the sixty-second session's
# pairs script, on a database and seed of this session's.
#
#   run.sh NEW OLD OUT PAIRS
#   EXTRA="-workloads create,mixed,update -c 16,64" run.sh NEW OLD OUT PAIRS
#
# NEW and OLD are custos binaries (with and without the late join); OUT/compare.txt
# compares them at the end (`custos bench -compare`).
DB=latejoin_63 SEED=63 exec "$(dirname "$(realpath "$0")")/../session62-keyfill/run.sh" "$@"
