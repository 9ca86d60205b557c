#!/usr/bin/env bash
# Records a CPU profile of a running miroir-dataplane and renders it.
#   perf/flamegraph.sh [SECONDS] [OUT.svg]
# Needs `perf` (Debian: linux-perf). With inferno (`cargo install inferno`) it writes a
# flamegraph SVG; without it, OUT with .txt: the top symbols by self time and the data plane's
# call tree (`perf report`), which is what docs/benchmarks.md#flamegraphs quotes.
# Drive load meanwhile, e.g. `bench/run proxy-overhead` or perf/loadtest.sh. Env: PID (profile
# this process instead of the newest miroir-dataplane), CALLGRAPH (default `dwarf,16384`: the
# release profile keeps debug info but not frame pointers).
set -euo pipefail
secs=${1:-15}; out=${2:-flamegraph.svg}
pid=${PID:-$(pgrep -n -f miroir-dataplane)} || { echo "no miroir-dataplane running" >&2; exit 1; }
data=$(mktemp /tmp/miroir.perf.XXXXXX)
trap 'rm -f "$data"' EXIT
perf record -F 999 --call-graph "${CALLGRAPH:-dwarf,16384}" -p "$pid" -o "$data" -- sleep "$secs"
if command -v inferno-flamegraph >/dev/null; then
  perf script -i "$data" | inferno-collapse-perf | inferno-flamegraph > "$out"
else
  out=${out%.svg}.txt
  {
    echo "## self time by shared object"
    perf report -i "$data" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%'
    echo "## self time by symbol (top 60)"
    perf report -i "$data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
      grep '%' | head -60
    echo "## inclusive time by symbol (top 120)"
    perf report -i "$data" --children --sort symbol --stdio -g none 2>/dev/null |
      grep '%' | head -120
  } > "$out"
fi
echo "wrote $out"
