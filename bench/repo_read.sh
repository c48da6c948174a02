#!/usr/bin/env bash
# Read-path benchmark of a repo mount against hubsim on loopback. Prints each figure beside the
# limit it is measured against. Not a test: nothing here passes or fails.
# Usage: bench/repo_read.sh [TARGET_DIR]     env: BENCH_MIB (default 1024)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../target}/release
mib=${BENCH_MIB:-1024}
source "$here/lib.sh"
requests() { curl -s "$ep/_emulator/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }

start_hubsim
mkdir -p "$work/src/many"
python3 -c "
import random, sys
r = random.Random(5)
with open('$work/src/big.bin', 'wb') as f:
    for _ in range($mib):
        f.write(r.randbytes(1 << 20))
"
for i in $(seq 0 2499); do echo "$i" > "$work/src/many/f$i.txt"; done
"$bin/hubsim" seed --endpoint "$ep" repo bench/repo --from "$work/src" >/dev/null
size=$(stat -c %s "$work/src/big.bin")
hash=$(curl -sI "$ep/bench/repo/resolve/main/big.bin" | sed -n 's/^x-xet-hash: //Ip' | tr -d '\r')

mount_at() { # mount_at DIR CACHE_DIR [FLAGS] -> sets $mpid and $usable (seconds until it answers)
  mkdir -p "$1"
  local t0; t0=$(now)
  start_mount "$1" --cache-dir "$2" "${@:3}" repo bench/repo
  usable=$(python3 -c "print(f'{$(now)-$t0:.3f}')")
}
echo "$(machine); file: $mib MiB xet"

runs=${BENCH_RUNS:-3}

# Direct xet-core downloads of the same bytes (no mount), streamed and discarded: without and
# with the disk chunk cache (a mount caches by default; writing the cache costs disk bandwidth).
d=(); dc=(); df=()
for i in $(seq "$runs"); do
  drop_caches
  df+=("$("$bin/hubsim" cas-download --endpoint "$ep" --hash "$hash" --size "$size" --out "$work/direct.bin" | sed -n 's/.*file_download_mb_s=\([0-9.]*\).*/\1/p')")
  rm -f "$work/direct.bin"
  drop_caches
  "$bin/hubsim" cas-download --endpoint "$ep" --hash "$hash" --size "$size" >"$work/direct.out"
  d+=("$(sed -n 's/.*direct_download_mb_s=\([0-9.]*\).*/\1/p' "$work/direct.out")")
  raw=$(sed -n 's/.*raw_transfer_mb_s=\([0-9.]*\).*/\1/p' "$work/direct.out")
  drop_caches
  dc+=("$("$bin/hubsim" cas-download --endpoint "$ep" --hash "$hash" --size "$size" --cache-dir "$work/direct-cache" | sed -n 's/.*direct_download_mb_s=\([0-9.]*\).*/\1/p')")
  rm -rf "$work/direct-cache"
done
direct=$(median "${d[@]}"); direct_cached=$(median "${dc[@]}"); direct_file=$(median "${df[@]}")

cold_read() { # cold_read FLAGS... -> one cold sequential MB/s through a fresh mount; sets $rss
  rm -rf "$work/cold-cache"
  mount_at "$work/mnt0" "$work/cold-cache" "$@"
  drop_caches
  local t0 t1; t0=$(now); dd if="$work/mnt0/big.bin" of=/dev/null bs=1M status=none; t1=$(now)
  rss=$(awk '/VmHWM/{print int($2/1024)}' /proc/$mpid/status)
  fusermount3 -u "$work/mnt0"; wait "$mpid" 2>/dev/null || true
  mbps "$size" "$t0" "$t1"
}
c=(); cc=(); r=()
for i in $(seq "$runs"); do
  c+=("$(cold_read --no-disk-cache)")
  cc+=("$(cold_read)")
done
cold_nocache=$(median "${c[@]}"); cold=$(median "${cc[@]}")
# Peak RSS of one sequential reader: a last cold run, read in this shell so $rss survives.
rm -rf "$work/cache"
mount_at "$work/mnt1" "$work/cache"
drop_caches
dd if="$work/mnt1/big.bin" of=/dev/null bs=1M status=none
rss=$(awk '/VmHWM/{print int($2/1024)}' /proc/$mpid/status)
cache_bytes=$(du -sb --exclude=xet --exclude=copies "$work/cache" | cut -f1)
copies_bytes=$(du -sb "$work/cache/copies" 2>/dev/null | cut -f1)
echo "mount usable after:          ${usable} s             (limit: 0.1 s)"
echo "cold sequential, no cache:   ${cold_nocache} MB/s vs direct xet-core ${direct} MB/s  ratio $(ratio "$cold_nocache" "$direct")  (limit: >= 1.0; medians of $runs)"
echo "cold sequential, disk cache: ${cold} MB/s vs direct xet-core with the same cache ${direct_cached} MB/s  ratio $(ratio "$cold" "$direct_cached")  (limit: >= 1.0; medians of $runs)"
echo "cold sequential vs download: ${cold} MB/s vs xet-core downloading the file to disk (as hf download does) ${direct_file} MB/s  ratio $(ratio "$cold" "$direct_file")  (limit: >= 1.0)"
echo "  raw CAS transfer of the same reconstruction (no decoding): ${raw} MB/s  (the ceiling)"
echo "peak RSS, one seq reader:    ${rss} MiB             (limit: 128 MiB)"
echo "chunk cache after that read: $((cache_bytes >> 20)) MiB for $((size >> 20)) MiB read  ratio $(ratio "$cache_bytes" "$size")  (limit: <= 1.05)"
echo "  besides it, the local copy for passthrough opens (root, Linux 6.9+): $((${copies_bytes:-0} >> 20)) MiB"

# Re-read in the same mount with a new open: the kernel's page cache serves it (the mount is at
# a branch; its content has not changed), against a local file's re-read from the page cache.
# Both on the same footing: read once cold, then the median of three re-reads.
rereads() { # rereads FILE -> median MB/s of three page-cache re-reads
  local r=() t0 t1
  for _ in 1 2 3; do t0=$(now); dd if="$1" of=/dev/null bs=1M status=none; t1=$(now); r+=("$(mbps "$size" "$t0" "$t1")"); done
  median "${r[@]}"
}
reread=$(rereads "$work/mnt1/big.bin")
mount_folios=$(python3 "$here/folios.py" "$work/mnt1/big.bin")
drop_caches; dd if="$work/src/big.bin" of=/dev/null bs=1M status=none
local_reread=$(rereads "$work/src/big.bin")
local_folios=$(python3 "$here/folios.py" "$work/src/big.bin")
echo "page-cache re-read, new open: ${reread} MB/s vs a local file's page-cache re-read ${local_reread} MB/s  ratio $(ratio "$reread" "$local_reread")  (limit: >= 0.9; medians of 3)"
echo "  page cache of the two: ${mount_folios} (mount); ${local_folios} (local)"

# ls -lR of the 2,500-entry directory, with the Hub requests it caused.
r0=$(requests); t0=$(now); ls -lR "$work/mnt1/many" >/dev/null; t1=$(now); r1=$(requests)
echo "ls -lR 2,500 entries:        $(python3 -c "print(f'{($t1-$t0)*1000:.0f}')") ms, $((r1-r0)) Hub requests (limit: the listing pages only = 3)"
fusermount3 -u "$work/mnt1"; wait "$mpid" 2>/dev/null || true

# Warm re-read in a new mount process (chunk cache on disk is warm) vs a local copy.
mount_at "$work/mnt2" "$work/cache"
drop_caches
t0=$(now); dd if="$work/mnt2/big.bin" of=/dev/null bs=1M status=none; t1=$(now)
warm=$(mbps "$size" "$t0" "$t1")
drop_caches
t0=$(now); dd if="$work/src/big.bin" of=/dev/null bs=1M status=none; t1=$(now)
local_rate=$(mbps "$size" "$t0" "$t1")
echo "warm re-read, new process:   ${warm} MB/s vs local copy ${local_rate} MB/s  ratio $(ratio "$warm" "$local_rate")  (limit: >= 0.9)"
fusermount3 -u "$work/mnt2"; wait "$mpid" 2>/dev/null || true

# 200 random 1 MiB preads on a cold mount (fresh chunk cache); bytes fetched from the mount's stats.
mount_at "$work/mnt3" "$work/cache3"
drop_caches
echo "200 random 1 MiB preads:     $(python3 "$here/random_preads.py" "$work/mnt3/big.bin")  (limits: 8 ms, 30 ms)"
fusermount3 -u "$work/mnt3"; wait "$mpid" 2>/dev/null || true
python3 - "$work/mount.log" <<'PY'
import re, sys
lines = [l for l in open(sys.argv[1]) if "bytes fetched" in l]
m = re.search(r"(\d+) bytes fetched \((\d+) from CAS\) for (\d+) bytes read", lines[-1])
fetched, cas, read = int(m.group(1)), int(m.group(2)), int(m.group(3))
app = 200 << 20
print(f"random preads, bytes:        {cas/app:.2f}x from CAS of the bytes the program read; kernel asked {read/app:.2f}x, core fetched {fetched/app:.2f}x  (limit: 1.3x)")
PY
