#!/usr/bin/env bash
# Many readers on one repo mount against hubsim on loopback, each figure beside its limit:
# 4 processes each reading a different file (aggregate, against xet-core downloading the four
# at once), and 8 processes reading the same file at once (CAS bytes against the file's size,
# each reader's rate against one reader alone). No disk chunk cache, so every byte comes from
# CAS. Not a test: nothing here passes or fails.
# Usage: bench/many_readers.sh [TARGET_DIR]   env: BENCH_MIB (1024 per file), BENCH_PARTS ("4 8":
# which parts to run, 4 readers of 4 files and/or 8 readers of one file)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../target}/release
mib=${BENCH_MIB:-1024}
parts=${BENCH_PARTS:-4 8}
source "$here/lib.sh"

start_hubsim
mkdir -p "$work/src"
python3 -c "
import random
for i in range(4):
    r = random.Random(100 + i)
    with open(f'$work/src/f{i}.bin', 'wb') as f:
        for _ in range($mib):
            f.write(r.randbytes(1 << 20))
"
"$bin/hubsim" seed --endpoint "$ep" repo bench/many --from "$work/src" >/dev/null
size=$(stat -c %s "$work/src/f0.bin")
hash_of() { curl -sI "$ep/bench/many/resolve/main/$1" | sed -n 's/^x-xet-hash: //Ip' | tr -d '\r'; }
echo "$(machine); 4 files of $mib MiB xet"

mount_at() { # mount_at DIR -> $mpid
  start_mount "$1" --cache-dir "$work/cache" --no-disk-cache repo bench/many
}
unmount_at() { fusermount3 -u "$1"; wait "$mpid" 2>/dev/null || true; }
cas_bytes() { sed -n 's/.*(\([0-9]*\) from CAS).*/\1/p' "$work/mount.log" | tail -1; }

readers=()
wait_all() { for p in "${readers[@]}"; do wait "$p" || true; done; readers=(); }

if [[ " $parts " == *" 4 "* ]]; then
# Reference: xet-core downloading the four files at once (streamed and discarded).
drop_caches
hashes=(); for i in 0 1 2 3; do hashes+=("$(hash_of "f$i.bin")"); done
t0=$(now)
for i in 0 1 2 3; do "$bin/hubsim" cas-download --endpoint "$ep" --hash "${hashes[$i]}" --size "$size" >/dev/null & readers+=($!); done
wait_all; t1=$(now)
direct4=$(mbps "$((4 * size))" "$t0" "$t1")

mount_at "$work/mnt"
drop_caches
t0=$(now)
for i in 0 1 2 3; do dd if="$work/mnt/f$i.bin" of=/dev/null bs=1M status=none & readers+=($!); done
wait_all; t1=$(now)
mount4=$(mbps "$((4 * size))" "$t0" "$t1")
unmount_at "$work/mnt"
echo "4 readers, 4 files:          ${mount4} MB/s aggregate vs xet-core downloading the four at once ${direct4} MB/s  ratio $(ratio "$mount4" "$direct4")  (limit: >= 0.9)"
fi
[[ " $parts " == *" 8 "* ]] || exit 0

# One reader alone, then 8 readers of the same file at once, each timed.
mount_at "$work/mnt"
drop_caches
t0=$(now); dd if="$work/mnt/f0.bin" of=/dev/null bs=1M status=none; t1=$(now)
alone=$(mbps "$size" "$t0" "$t1")
unmount_at "$work/mnt"
mount_at "$work/mnt"
drop_caches
for i in $(seq 8); do
  (s=$(now); dd if="$work/mnt/f1.bin" of=/dev/null bs=1M status=none; e=$(now); mbps "$size" "$s" "$e" >"$work/rate$i") &
  readers+=($!)
done
wait_all
unmount_at "$work/mnt"
rates=$(cat "$work"/rate*)
slowest=$(echo "$rates" | sort -n | head -1)
echo "8 readers, same file:        CAS bytes $(ratio "$(cas_bytes)" "$size")x the file (limit: ~1.0); slowest reader ${slowest} MB/s, median $(median $rates) MB/s vs one reader alone ${alone} MB/s  ratio $(ratio "$slowest" "$alone")  (limit: >= 0.8)"
