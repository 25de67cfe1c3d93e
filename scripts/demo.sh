#!/usr/bin/env bash
# make demo: runs a few jobs through drover.
set -euo pipefail
DROVER=${1:-build/drover}
"$DROVER" version
