#!/usr/bin/env bash
# Whole-process start-up: `CMD` natively, under `runsc do` and under
# `veil do`, alternating, N runs each; prints the median wall time and the
# ratios veil/runsc and veil/native.
# Usage: bench/startup.sh [RUNS] [CMD...]   (default: 20 /bin/true)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-20}
shift || true
cmd=("${@:-/bin/true}")
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p veil
veil=("$repo/target/release/veil" do)
runsc=(runsc --network=none do)
command -v runsc >/dev/null 2>&1 || runsc=()

ms() { # runs "$@" once, prints its wall time in ms
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000))
}
median() { sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'; }

declare -a n v r
for _ in $(seq "$runs"); do
    n+=("$(ms "${cmd[@]}")")
    v+=("$(ms "${veil[@]}" "${cmd[@]}")")
    [ ${#runsc[@]} -gt 0 ] && r+=("$(ms "${runsc[@]}" "${cmd[@]}")")
done
nm=$(printf '%s\n' "${n[@]}" | median)
vm=$(printf '%s\n' "${v[@]}" | median)
printf 'start-up of %s, median of %d runs (ms)\n' "${cmd[*]}" "$runs"
printf '  native %8s\n  veil   %8s  (%.1fx native)\n' "$nm" "$vm" "$(awk -v a="$vm" -v b="$nm" 'BEGIN{print a/b}')"
if [ ${#runsc[@]} -gt 0 ]; then
    rm_=$(printf '%s\n' "${r[@]}" | median)
    printf '  runsc  %8s  (veil/runsc %.2f)\n' "$rm_" "$(awk -v a="$vm" -v b="$rm_" 'BEGIN{print a/b}')"
fi
