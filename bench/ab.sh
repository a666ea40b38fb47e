#!/usr/bin/env bash
# Side-by-side start-up runs of the api-scale bench: each round runs every variant once, in turn,
# so machine noise spreads over all of them; prints each run and then the medians.
#
#   sudo bench/ab.sh ROUNDS 'name|path/to/ebpf-proxy|K=V;K=V' 'name2|...' ...
#
# The environment part is passed to the daemon (EPX_BENCH_DAEMON_ENV); it may be empty.
# EPX_AB_ARGS adds bench options (default: --changes 3). Needs `make build` and the bench built.
set -uo pipefail
cd "$(dirname "$0")/.."
rounds=${1:?rounds}
shift
bench=bench/EbpfProxy.Bench/bin/Release/net10.0/EbpfProxy.Bench.dll
out=$(mktemp -d)
echo "load before: $(uptime)"
for r in $(seq 1 "$rounds"); do
  for v in "$@"; do
    IFS='|' read -r name exe env <<<"$v"
    log="$out/$name.$r"
    EPX_BENCH_DAEMON_ENV="$env" timeout 300 dotnet "$bench" api-scale --ebpf-proxy "$exe" ${EPX_AB_ARGS:---changes 3} >"$log" 2>&1
    s=$(grep -o 'programmed: [0-9.]*' "$log" | grep -o '[0-9.]*$')
    m=$(grep -o 'after sync: [0-9]*' "$log" | grep -o '[0-9]*$')
    sync=$(grep 'programmed:' "$log" | grep -o 'translate [0-9.]* ms, plan [0-9.]* ms, write [0-9.]* ms, heap [0-9]* MiB, [0-9.]* ms')
    phases=$(grep -o 'phases from start: .*' "$log" | sed -e 's/phases from start: //' -e 's/first log line/log/' -e 's/all listed/listed/' -e 's/first sync logged/synced/' -e 's/daemon CPU by then/cpu/')
    printf '%-14s round %d: %s s, rss %s MiB | %s | %s  [load %s]\n' \
      "$name" "$r" "${s:-FAIL}" "${m:-?}" "${phases:-?}" "${sync:-?}" "$(cut -d' ' -f1 /proc/loadavg)"
    grep -h 'change -> map write\|own sync time' "$log" | sed 's/^/      /'
    grep -o 'p50 [0-9.]* ms, p99 [0-9.]* ms' "$log" | head -1 | awk '{print $2, $5}' >>"$out/$name.lat"
    grep -o 'cpu [0-9.]*' <<<"$phases" | grep -o '[0-9.]*$' >>"$out/$name.cpu"
    [ -n "$s" ] || tail -5 "$log"
    echo "$s" >>"$out/$name.start"
    echo "$m" >>"$out/$name.rss"
  done
done
echo "medians over $rounds rounds:"
for v in "$@"; do
  IFS='|' read -r name _ _ <<<"$v"
  med() { sort -n "$1" | awk '{a[NR]=$1} END {if (NR==0) print "?"; else if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
  printf '%-14s start->programmed %s s (min %s), daemon cpu by then %s s, rss after sync %s MiB' "$name" "$(med "$out/$name.start")" "$(sort -n "$out/$name.start" | head -1)" "$(med "$out/$name.cpu")" "$(med "$out/$name.rss")"
  if [ -s "$out/$name.lat" ]; then
    printf ', change->map p50 %s ms, p99 %s ms' "$(cut -d' ' -f1 "$out/$name.lat" >"$out/p50"; med "$out/p50")" "$(cut -d' ' -f2 "$out/$name.lat" >"$out/p99"; med "$out/p99")"
  fi
  echo
done
echo "load after: $(uptime)"
rm -rf "$out"
