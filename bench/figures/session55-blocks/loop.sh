#!/bin/bash
# The built change (G = 3284be3) against the head before it (L = 78d07f8). Round i ran G first when i was odd.
# The builds were in /work/s55/bin; see README.md for the commits.
cd "$(dirname "$0")" && BINDIR=${BINDIR:-/work/s55/bin} ../session55-pairs.sh . 6 read,lookup,create G=blk L=clen
