#!/usr/bin/env bash
# OCI container lifecycle: N rounds of create + start + wait until stopped +
# delete of `true` on a busybox bundle, with runc, runsc (--network=none) and
# veil (target/release/veil if built and not older than target/debug/veil,
# else the debug build; $VEIL overrides), whichever are installed. Prints ms per lifecycle, the peak memory of the container's
# cgroup (v1 memory.max_usage_in_bytes or v2 memory.peak, the highest over
# the rounds), and the ratios veil/runc and veil/runsc.
# Usage (as root): bench/oci.sh [N] [RUNTIME...]   (default: 10 runc runsc veil)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

# A container's init whose create has exited is re-parented to the nearest
# child subreaper. Without one, PID 1 may reap it late, and a zombie init
# still counts as running. So the rounds run in a bash that is a subreaper
# (the attribute survives execve, and bash reaps any child).
if [ -z "${VEILBENCH_SUBREAPER:-}" ]; then
    export VEILBENCH_SUBREAPER=1
    exec python3 -c '
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER): %s" % os.strerror(ctypes.get_errno()))
os.execvp("bash", ["bash"] + sys.argv[1:])
' "$0" "$@"
fi

[ "$(id -u)" -eq 0 ] || { echo "bench/oci.sh: needs root (the runtimes make namespaces and cgroups)" >&2; exit 1; }
n=${1:-10}
shift || true
[ "$#" -gt 0 ] || set -- runc runsc veil
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "bench/oci.sh: needs $busybox (busybox-static)" >&2; exit 1; }

release="$repo/target/release/veil" debug="$repo/target/debug/veil"
if [ -n "${VEIL:-}" ]; then
    veil=$VEIL
elif [ -x "$release" ] && ! [ "$debug" -nt "$release" ]; then
    veil=$release
else
    veil=$debug
fi

work=$(mktemp -d /tmp/veilbench.XXXXXX)
cgname=veilbench-$$
cleanup() {
    # Runtimes remove their cgroups on delete; a failed round may not have.
    for d in /sys/fs/cgroup/*/"$cgname"-* /sys/fs/cgroup/"$cgname"-*; do
        [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# The bundle: busybox and its applets, and runc's default spec running `true`.
mkdir -p "$work/bundle/rootfs/bin" "$work/bundle/rootfs"/{proc,sys,dev,tmp,etc}
cp "$busybox" "$work/bundle/rootfs/bin/busybox"
for a in $("$busybox" --list); do
    [ "$a" = busybox ] || ln -s busybox "$work/bundle/rootfs/bin/$a"
done
if command -v runc >/dev/null 2>&1; then
    (cd "$work/bundle" && timeout 20 runc spec)
elif [ -x "$veil" ]; then
    (cd "$work/bundle" && timeout 20 "$veil" spec)
else
    echo "bench/oci.sh: needs runc or a built veil to write config.json" >&2; exit 1
fi
spec_template="$work/bundle/config.json.in"
mv "$work/bundle/config.json" "$spec_template"

# write_spec CGROUP: config.json for this runtime's own cgroup.
write_spec() {
    python3 - "$spec_template" "$work/bundle/config.json" "$work/bundle/rootfs" "$1" <<'EOF'
import json, sys
src, dst, rootfs, cgroup = sys.argv[1:]
spec = json.load(open(src))
spec["process"]["terminal"] = False
spec["process"]["args"] = ["true"]
spec["root"] = {"path": rootfs, "readonly": True}
spec["linux"]["cgroupsPath"] = cgroup
json.dump(spec, open(dst, "w"), indent=2)
EOF
}

# peak_bytes CGROUP: the cgroup's peak memory so far, or 0.
peak_bytes() {
    local f
    for f in /sys/fs/cgroup/memory"$1"/memory.max_usage_in_bytes /sys/fs/cgroup"$1"/memory.peak; do
        [ -r "$f" ] && { cat "$f"; return; }
    done
    echo 0
}

# bench NAME CMD...: prints "ms peak_kib", or fails with the runtime's error.
bench() {
    local name=$1; shift
    local root="$work/state-$name" cg="/$cgname-$name" err="$work/err-$name"
    local t0 t1 peak=0 p i s
    write_spec "$cg"
    t0=$(date +%s%N)
    for i in $(seq "$n"); do
        timeout 30 "$@" --root "$root" create --bundle "$work/bundle" "b$i" </dev/null >/dev/null 2>"$err" ||
            { echo "$name: create failed: $(head -c 300 "$err")" >&2; return 1; }
        timeout 30 "$@" --root "$root" start "b$i" </dev/null >/dev/null 2>"$err" ||
            { echo "$name: start failed: $(head -c 300 "$err")" >&2; return 1; }
        for s in $(seq 1000); do
            timeout 10 "$@" --root "$root" state "b$i" 2>/dev/null | grep -q '"stopped"' && break
            [ "$s" -lt 1000 ] || { echo "$name: b$i not stopped after 1000 polls" >&2; return 1; }
            sleep 0.01
        done
        p=$(peak_bytes "$cg")
        [ "$p" -gt "$peak" ] && peak=$p
        timeout 30 "$@" --root "$root" delete "b$i" </dev/null >/dev/null 2>"$err" ||
            { echo "$name: delete failed: $(head -c 300 "$err")" >&2; return 1; }
    done
    t1=$(date +%s%N)
    echo "$(((t1 - t0) / n / 1000000)) $((peak / 1024))"
}

declare -A ms kib
printf '%d lifecycles (create, start, wait for stopped, delete) of `true` each\n' "$n"
printf '%-8s %12s %16s\n' runtime 'ms/lifecycle' 'peak cgroup KiB'
for name in "$@"; do
    case $name in
        runc) cmd=(runc) ;;
        runsc) cmd=(runsc --network=none) ;;
        veil) cmd=("$veil") ;;
        *) cmd=("$name") ;;
    esac
    if ! command -v "${cmd[0]}" >/dev/null 2>&1; then
        printf '%-8s %12s\n' "$name" 'not installed'
        continue
    fi
    if r=$(bench "$name" "${cmd[@]}"); then
        read -r ms["$name"] kib["$name"] <<<"$r"
        printf '%-8s %12s %16s\n' "$name" "${ms[$name]}" "${kib[$name]}"
    else
        printf '%-8s %12s\n' "$name" failed
    fi
done
echo "(veil: $veil)"
[ "$veil" != "$debug" ] || echo "(a debug build: cargo build --release -p veil for real numbers)"
for other in runc runsc; do
    if [ -n "${ms[veil]:-}" ] && [ -n "${ms[$other]:-}" ]; then
        awk -v vm="${ms[veil]}" -v om="${ms[$other]}" -v vk="${kib[veil]}" -v ok="${kib[$other]}" -v o="$other" \
            'BEGIN { printf "veil/%s: time %.2fx", o, (om ? vm / om : 0); if (ok) printf ", memory %.2fx", vk / ok; print "" }'
    fi
done
