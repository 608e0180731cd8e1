#!/bin/bash
# Content-Length on every answer (L = 78d07f8) against the head before it (H = 1d95587).
# The builds were in /work/s55/bin; see README.md for the commits.
cd "$(dirname "$0")" && BINDIR=${BINDIR:-/work/s55/bin} ../session55-pairs.sh . 6 read,lookup H=head L=clen
