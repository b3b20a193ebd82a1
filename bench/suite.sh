#!/usr/bin/env bash
# veil's benchmark suite, in one run: the syscall-path micro-benchmarks
# (bench/syscall_suite.c) natively, under runsc (ptrace platform, if
# installed) and under veil on each platform; `veil do /bin/true`
# start-up; and the peak memory of the sandbox's processes. Prints ns/op
# (medians over ROUNDS alternating runs) and ratios to native and runsc.
# Usage (as root, for the memory cgroup): bench/suite.sh [ROUNDS]
# Platforms: VEIL_PLATFORMS="ptrace ..." (default: the ones veil offers).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p veil
veil=$repo/target/release/veil
out=$repo/target/bench
mkdir -p "$out"
cc -O2 -pthread -o "$out/syscall_suite" "$repo/bench/syscall_suite.c"
platforms=${VEIL_PLATFORMS:-$("$veil" --help | sed -n 's/.*--platform.*\[possible values: \(.*\)\].*/\1/p' | tr -d ',')}
platforms=${platforms:-ptrace}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

names=(native)
cmds=("")
if command -v runsc >/dev/null 2>&1; then
    names+=(runsc)
    cmds+=("runsc --network=none do")
else
    echo "runsc not installed (apt-get install runsc): no runsc column" >&2
fi
for p in $platforms; do
    names+=("veil-$p")
    cmds+=("$veil --platform $p do")
done

# Alternating rounds, so that a noisy moment hits every column alike.
for _ in $(seq "$rounds"); do
    for i in "${!cmds[@]}"; do
        # shellcheck disable=SC2086
        ${cmds[$i]} "$out/syscall_suite" >>"$tmp/$i.txt" 2>/dev/null ||
            echo "run failed: ${names[$i]}" >&2
    done
done
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "nan" || b == "nan" || b == 0) print "-"; else printf "%.2f", a / b}'; }
runsc_col=$(printf '%s\n' "${names[@]}" | grep -nx runsc | cut -d: -f1 || true)

printf '%-16s' "ns/op"
for n in "${names[@]}"; do printf ' %12s' "$n"; done
for n in "${names[@]:1}"; do
    [ "$n" = runsc ] && continue
    printf ' %14s' "$n/native"
    [ -n "$runsc_col" ] && printf ' %14s' "$n/runsc"
done
echo
for op in $(awk '{print $1}' "$tmp/0.txt" | awk '!seen[$0]++'); do
    declare -a v=()
    for i in "${!cmds[@]}"; do
        v[i]=$(grep "^$op " "$tmp/$i.txt" | awk '{print $2}' | median)
    done
    printf '%-16s' "$op"
    for x in "${v[@]}"; do printf ' %12s' "$x"; done
    for i in "${!names[@]}"; do
        [ "$i" -eq 0 ] || [ "${names[$i]}" = runsc ] && continue
        printf ' %14s' "$(ratio "${v[$i]}" "${v[0]}")"
        [ -n "$runsc_col" ] && printf ' %14s' "$(ratio "${v[$i]}" "${v[$((runsc_col - 1))]}")"
    done
    echo
done

# Start-up: wall time of `... /bin/true`, median of 10 runs each.
echo
printf '%-16s' "start-up ms"
for i in "${!cmds[@]}"; do
    for _ in $(seq 10); do
        t0=$(date +%s%N)
        # shellcheck disable=SC2086
        ${cmds[$i]} /bin/true >/dev/null 2>&1 || true
        t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000))
    done | median | awk '{printf " %12.2f", $1 / 1000}'
done
echo

# Peak memory: the most the sandbox's processes held at once (a memory
# cgroup's high-water mark) while running the micro-benchmarks.
cgroot=/sys/fs/cgroup
if [ -f "$cgroot/cgroup.controllers" ]; then
    cg=$cgroot/veil-bench-$$ peak=memory.peak
    mkdir -p "$cg" && echo +memory >"$cg/cgroup.subtree_control" 2>/dev/null || true
else
    cg=$cgroot/memory/veil-bench-$$ peak=memory.max_usage_in_bytes
fi
if [ "$(id -u)" -eq 0 ] && mkdir -p "$cg" 2>/dev/null; then
    printf '%-16s' "peak KiB"
    for i in "${!cmds[@]}"; do
        # runsc moves its sandbox into a cgroup of its own, out of reach
        # here (bench/oci.sh measures runsc's containers).
        if [ "${names[$i]}" = runsc ]; then
            printf ' %12s' n/a
            continue
        fi
        # A child shell joins the cgroup, so the peak is this run's alone.
        sub=$cg/run$i
        mkdir "$sub"
        # shellcheck disable=SC2086
        sh -c "echo \$\$ > $sub/cgroup.procs; exec ${cmds[$i]} $out/syscall_suite >/dev/null 2>&1" || true
        printf ' %12s' "$(($(cat "$sub/$peak") / 1024))"
        rmdir "$sub" 2>/dev/null || true
    done
    echo
    rmdir "$cg" 2>/dev/null || true
else
    echo "peak memory: needs root and a writable memory cgroup" >&2
fi
