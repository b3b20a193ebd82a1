#!/usr/bin/env bash
# File-system benchmarks natively, under runsc (ptrace platform) and under
# veil, alternating, in one run: sequential write/read of a 256 MiB file,
# open+close and stat latency of a host file (bench/fsbench.c), and the
# wall time of `ls -lR /usr`. Prints each median and its ratio to native
# and, for veil, to runsc (below 1 is better).
# Usage: bench/fs.sh [ROUNDS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p veil
out=$repo/target/bench
mkdir -p "$out"
gcc -O2 -static -o "$out/fsbench" "$repo/bench/fsbench.c"

declare -A runners=([native]="" [veil]="$repo/target/release/veil do")
order=(native)
if command -v runsc >/dev/null 2>&1; then
    runners[runsc]="runsc --network=none do"
    order+=(runsc)
else
    echo "runsc not installed (apt-get install runsc): comparing with native only" >&2
fi
order+=(veil)

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for ((r = 0; r < rounds; r++)); do
    for who in "${order[@]}"; do
        # shellcheck disable=SC2086 # the runner is a command prefix
        ${runners[$who]} "$out/fsbench" /tmp/veil-fsbench-$$ /etc/hostname 2>/dev/null |
            sed "s/^/$who /" >>"$results" || echo "$who fsbench failed" >&2
        start=$(date +%s.%N)
        # shellcheck disable=SC2086
        if ${runners[$who]} /bin/ls -lR /usr >/dev/null 2>&1; then
            echo "$who ls_lR_usr $(echo "($(date +%s.%N) - $start) * 1000" | bc) ms" >>"$results"
        else
            echo "$who ls -lR /usr failed" >&2
        fi
    done
done

python3 - "$results" "${order[@]}" <<'PY'
import statistics, sys
path, order = sys.argv[1], sys.argv[2:]
vals, units, names = {}, {}, []
for line in open(path):
    who, name, value, unit = line.split()
    vals.setdefault((who, name), []).append(float(value))
    units[name] = unit
    if name not in names:
        names.append(name)
med = {k: statistics.median(v) for k, v in vals.items()}
def cost(name, v):  # higher is worse, so ratios read the same way
    return 1 / v if units[name].endswith("/s") else v
head = f"{'metric':18} {'unit':6}" + "".join(f"{w:>10}" for w in order)
head += "".join(f"{w + '/native':>14}" for w in order[1:])
if "runsc" in order:
    head += f"{'veil/runsc':>12}"
print(head)
for n in names:
    row = f"{n:18} {units[n]:6}"
    row += "".join(f"{med[(w, n)]:>10.0f}" if (w, n) in med else f"{'-':>10}" for w in order)
    for w in order[1:]:
        ok = (w, n) in med and ("native", n) in med
        row += f"{cost(n, med[(w, n)]) / cost(n, med[('native', n)]):>14.2f}" if ok else f"{'-':>14}"
    if "runsc" in order:
        ok = ("veil", n) in med and ("runsc", n) in med
        row += f"{cost(n, med[('veil', n)]) / cost(n, med[('runsc', n)]):>12.2f}" if ok else f"{'-':>12}"
    print(row)
print("ratios are costs (time per op, or 1/throughput): below 1 is faster")
PY
