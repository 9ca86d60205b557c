#!/usr/bin/env bash
# Records a CPU profile of a running miroir-dataplane and renders a flamegraph SVG.
#   perf/flamegraph.sh [SECONDS] [OUT.svg]
# Needs `perf` (Debian: linux-perf) and inferno (`cargo install inferno`). Drive load with
# `bench/run proxy-overhead` (or wrk) while this records.
set -euo pipefail
secs=${1:-15}; out=${2:-flamegraph.svg}
pid=$(pgrep -n miroir-dataplane) || { echo "no miroir-dataplane running" >&2; exit 1; }
perf record -F 999 -g -p "$pid" -o /tmp/miroir.perf.data -- sleep "$secs"
perf script -i /tmp/miroir.perf.data | inferno-collapse-perf | inferno-flamegraph > "$out"
echo "wrote $out"
