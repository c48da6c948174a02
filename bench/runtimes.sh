#!/usr/bin/env bash
# The two runtimes side by side on the same build, hubsim and data: cold sequential read (no
# disk cache), 200 random 1 MiB preads, a sequential write to a bucket until committed, peak
# RSS, peak thread count, and binary size (the default build with both runtimes, and a
# threads-only build). Not a test: nothing here passes or fails.
# Usage: bench/runtimes.sh [TARGET_DIR]   env: BENCH_MIB (1024), BENCH_WRITE_MIB (512), BENCH_RUNS (3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=${1:-$here/../target}
bin=$target/release
mib=${BENCH_MIB:-1024}
write_mib=${BENCH_WRITE_MIB:-512}
runs=${BENCH_RUNS:-3}
source "$here/lib.sh"

# Binary sizes: the default build, and a threads-only build (same target dir; the default
# binary is rebuilt after, so the rest of the run uses it).
stripped() { strip -o "$work/stripped" "$1" && stat -c %s "$work/stripped"; }
(cd "$here/.." && cargo build -q --release -p hf-mount --no-default-features --features threads --target-dir "$target")
threads_only=$(stat -c %s "$bin/hf-mount-fuse"); threads_only_stripped=$(stripped "$bin/hf-mount-fuse")
(cd "$here/.." && cargo build -q --release -p hf-mount --target-dir "$target")
default_size=$(stat -c %s "$bin/hf-mount-fuse"); default_stripped=$(stripped "$bin/hf-mount-fuse")

start_hubsim --user bench:bench-token
curl -sf -X POST "$ep/api/buckets/bench/b" -H "authorization: Bearer bench-token" >/dev/null
python3 -c "
import random
r = random.Random(5)
with open('$work/big.bin', 'wb') as f:
    for _ in range($mib):
        f.write(r.randbytes(1 << 20))
"
mkdir -p "$work/src" && mv "$work/big.bin" "$work/src/big.bin"
"$bin/hubsim" seed --endpoint "$ep" --token bench-token repo bench/repo --from "$work/src" >/dev/null
size=$(stat -c %s "$work/src/big.bin")
echo "$(machine); read file: $mib MiB xet; write: $write_mib MiB"

mount_at() { # mount_at RUNTIME DIR ARGS... -> $mpid
  start_mount "$2" --runtime "$1" --hf-token bench-token --cache-dir "$work/cache-$1" --no-disk-cache "${@:3}"
}
unmount_at() { fusermount3 -u "$1"; wait "$mpid" 2>/dev/null || true; }
peak() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
# Highest thread count of process $1 while command "${@:2}" runs.
with_thread_peak() {
  local pid=$1; shift
  ( max=0; while kill -0 "$pid" 2>/dev/null; do n=$(peak "$pid" Threads || echo 0); [ "${n:-0}" -gt "$max" ] && max=$n && echo "$max" > "$work/threads"; sleep 0.02; done ) &
  local sampler=$!
  "$@"
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
}

for rt in smol threads; do
  reads=(); writes=()
  for i in $(seq "$runs"); do
    mount_at "$rt" "$work/mnt-$rt" repo bench/repo
    drop_caches; echo 0 > "$work/threads"
    t0=$(now); with_thread_peak "$mpid" dd if="$work/mnt-$rt/big.bin" of=/dev/null bs=1M status=none; t1=$(now)
    reads+=("$(mbps "$size" "$t0" "$t1")"); threads_read=$(cat "$work/threads")
    rss_read=$(($(peak "$mpid" VmHWM) / 1024))
    unmount_at "$work/mnt-$rt"
  done
  mount_at "$rt" "$work/mnt-$rt" repo bench/repo
  drop_caches
  preads=$(python3 "$here/random_preads.py" "$work/mnt-$rt/big.bin")
  unmount_at "$work/mnt-$rt"
  for i in $(seq "$runs"); do
    python3 -c "
import random
r = random.Random($i * 7919 + ${#rt})
with open('$work/w.bin', 'wb') as f:
    for _ in range($write_mib):
        f.write(r.randbytes(1 << 20))
"
    mount_at "$rt" "$work/mnt-$rt" bucket bench/b
    echo 0 > "$work/threads"
    t0=$(now); with_thread_peak "$mpid" dd if="$work/w.bin" of="$work/mnt-$rt/w-$rt-$i.bin" bs=1M status=none; t1=$(now)
    writes+=("$(mbps "$((write_mib << 20))" "$t0" "$t1")"); threads_write=$(cat "$work/threads")
    rss_write=$(($(peak "$mpid" VmHWM) / 1024))
    unmount_at "$work/mnt-$rt"
  done
  echo "runtime $rt:"
  echo "  cold sequential read, no cache:  $(median "${reads[@]}") MB/s  [${reads[*]}]  peak RSS $rss_read MiB, peak threads $threads_read"
  echo "  200 random 1 MiB preads:         $preads"
  echo "  sequential write until committed: $(median "${writes[@]}") MB/s  [${writes[*]}]  peak RSS $rss_write MiB, peak threads $threads_write"
done
echo "binary size: default build (smol + threads) $((default_size >> 20)) MiB ($((default_stripped >> 10)) KiB stripped), threads-only build $((threads_only >> 20)) MiB ($((threads_only_stripped >> 10)) KiB stripped)"
