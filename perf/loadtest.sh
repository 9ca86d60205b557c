#!/usr/bin/env bash
# Open-loop load against a running deployment with the bench load generator, and a report of
# latency percentiles per offered rate (coordinated-omission corrected: latency counts from
# each request's scheduled start).
#
#   perf/loadtest.sh URL [BODY_FILE] [RATES] [SECONDS]
#     URL        e.g. http://127.0.0.1:7700/indexes/movies/search
#     BODY_FILE  JSON body sent with POST (default: {"q":"movie","limit":20});
#                a file with one body per line is sent in turn (--bodies-file) if it is
#                named *.jsonl
#     RATES      offered requests/s, comma-separated (default: 500,1000,2000,4000)
#     SECONDS    measured seconds per rate (default 10; 2 s of warm-up come first)
#   Env: MIROIR_KEY (Authorization: Bearer …), CONNECTIONS (default 32), OUT (report file,
#   default perf/loadtest-<time>.md), LOADGEN (path; default target/release/loadgen, built
#   when missing).
# The report is a Markdown table (rate, achieved, p50/p90/p99/p99.9/max in ms, errors) plus
# the raw loadgen JSON lines; a rate the deployment cannot sustain shows as achieved < offered
# and a p99 that grows with the test length (queueing).
set -euo pipefail
url=${1:?usage: perf/loadtest.sh URL [BODY_FILE] [RATES] [SECONDS]}
body=${2:-}
rates=${3:-500,1000,2000,4000}
secs=${4:-10}
conns=${CONNECTIONS:-32}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
loadgen=${LOADGEN:-$target/release/loadgen}
if [[ ! -x $loadgen ]]; then
  (cd "$root" && cargo build --release -p miroir-bench --bin loadgen)
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [[ -z $body ]]; then
  body=$tmp/body.json
  printf '{"q":"movie","limit":20}' > "$body"
fi
body_arg=(--body-file "$body")
[[ $body == *.jsonl ]] && body_arg=(--bodies-file "$body")
auth=()
[[ -n ${MIROIR_KEY:-} ]] && auth=(--header "Authorization: Bearer $MIROIR_KEY")
out=${OUT:-$root/perf/loadtest-$(date -u +%Y%m%dT%H%M%SZ).md}
{
  echo "# Load test $(date -u +%FT%TZ)"
  echo
  echo "\`$url\`, $conns connections, open loop, ${secs} s per rate after 2 s of warm-up."
  echo
  echo "| offered rps | achieved rps | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors |"
  echo "|---|---|---|---|---|---|---|---|"
} > "$out"
raw=$tmp/raw.jsonl
for rate in ${rates//,/ }; do
  "$loadgen" --url "$url" --method POST "${body_arg[@]}" "${auth[@]}" \
    --connections "$conns" --duration "$secs" --warmup 2 --rate "$rate" | tee -a "$raw" |
    python3 -c '
import json, sys
r = json.load(sys.stdin)
ms = lambda k: f"{r[k] / 1000:.2f}"
print(f"| {r[\"target_rps\"]:.0f} | {r[\"achieved_rps\"]:.0f} | {ms(\"p50_us\")} | {ms(\"p90_us\")} | "
      f"{ms(\"p99_us\")} | {ms(\"p999_us\")} | {ms(\"max_us\")} | {r[\"errors\"]} |")' >> "$out"
done
{
  echo
  echo "Raw loadgen output:"
  echo
  echo '```'
  cat "$raw"
  echo '```'
} >> "$out"
cat "$out"
echo "wrote $out"
