#!/usr/bin/env bash
# Syscall-path micro-benchmarks (../shared/bench/syscall_bench) natively,
# under runsc (ptrace platform) and under veil, alternating, in one run.
# Prints ns/op per operation and each sandbox's ratio to native; compare the
# two ratio columns for veil against runsc.
# Usage: bench/syscalls.sh [ROUNDS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${VEIL_SHARED_BENCH:-$repo/../shared/bench}
rounds=${1:-3}
cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p veil
wrappers=("$repo/target/release/veil do")
if command -v runsc >/dev/null 2>&1; then
    wrappers=("runsc --network=none do" "${wrappers[@]}")
else
    echo "runsc not installed (apt-get install runsc): comparing with native only" >&2
fi
"$shared/compare.sh" "$rounds" -- "${wrappers[@]}"
