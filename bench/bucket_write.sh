#!/usr/bin/env bash
# Write-path benchmark of a bucket mount against hubsim on loopback. Prints each figure beside
# the limit it is measured against. Not a test: nothing here passes or fails.
# Usage: bench/bucket_write.sh [TARGET_DIR]     env: BENCH_MIB (1024), BENCH_FILES (1000), BENCH_RUNS (3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../target}/release
mib=${BENCH_MIB:-1024}
files=${BENCH_FILES:-1000}
runs=${BENCH_RUNS:-3}
source "$here/lib.sh"

new_hub() { # a fresh hubsim with an empty bucket bench/b
  if [ -n "${hubsim_pid:-}" ]; then kill "$hubsim_pid"; wait "$hubsim_pid" 2>/dev/null || true; fi
  start_hubsim --user bench:bench-token
  curl -sf -X POST "$ep/api/buckets/bench/b" -H "authorization: Bearer bench-token" >/dev/null
}
new_hub
size=$((mib << 20))
echo "$(machine); file: $mib MiB of random bytes"

mount_at() { # mount_at NAME [FLAGS] -> $mpid
  start_mount "$work/mnt-$1" --hf-token bench-token --cache-dir "$work/cache-$1" "${@:2}" bucket bench/b
}
unmount_at() { fusermount3 -u "$work/mnt-$1"; wait "$mpid" 2>/dev/null || true; }
peak_rss_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

# Every upload gets bytes the CAS has never seen (CAS dedup would make a repeat nearly free):
# the source is regenerated with a new seed before each measurement, then written back, so the
# kernel's writeback of it does not share the cores with the measurement that follows.
fresh_source() { python3 -c "
import random
r = random.Random($1)
with open('$work/src.bin', 'wb') as f:
    for _ in range($mib):
        f.write(r.randbytes(1 << 20))
"; sync; }

# The reference is xet-core uploading the same amount from a local file, with no mount.
direct=(); stream=(); adv=(); rss_stream=(); rss_adv=(); rss_direct=()
for i in $(seq "$runs"); do
  # Each measurement on a fresh hubsim and a fresh mount (bench/hubsim_store.sh: hubsim keeps
  # its pace as it fills; a mount's upload sessions slow down as its xet shard cache grows).
  new_hub; fresh_source "$((100 + i))"
  # GNU time reports the direct upload's peak RSS (xet-core's own footprint), when present.
  if [ -x /usr/bin/time ]; then
    out=$(/usr/bin/time -f "rss_kib=%M" "$bin/hubsim" cas-upload --endpoint "$ep" --file "$work/src.bin" 2>&1)
    rss_direct+=("$(echo "$out" | sed -n 's/^rss_kib=//p' | awk '{printf "%.0f", $1/1024}')")
  else
    out=$("$bin/hubsim" cas-upload --endpoint "$ep" --file "$work/src.bin")
  fi
  direct+=("$(echo "$out" | sed -n 's/.*direct_upload_mb_s=\([0-9.]*\).*/\1/p')")

  new_hub; fresh_source "$((200 + i))"
  mount_at s
  t0=$(now); dd if="$work/src.bin" of="$work/mnt-s/big-$i.bin" bs=1M status=none; t1=$(now)
  stream+=("$(mbps "$size" "$t0" "$t1")"); rss_stream+=("$(peak_rss_mib "$mpid")")
  unmount_at s

  new_hub; fresh_source "$((300 + i))"
  mount_at a --advanced-writes
  t0=$(now); dd if="$work/src.bin" of="$work/mnt-a/big-adv-$i.bin" bs=1M conv=fsync status=none; t1=$(now)
  adv+=("$(mbps "$size" "$t0" "$t1")"); rss_adv+=("$(peak_rss_mib "$mpid")")
  unmount_at a
done
d=$(median "${direct[@]}")
echo "sequential write of $mib MiB (medians of $runs; each run new random bytes, so no dedup):"
echo "  direct xet-core upload (limit):        $d MB/s   [${direct[*]}]"
s=$(median "${stream[@]}"); echo "  mount, streaming (dd, close commits):  $s MB/s   [${stream[*]}]  ratio $(ratio "$s" "$d")"
a=$(median "${adv[@]}"); echo "  mount, advanced (dd conv=fsync):       $a MB/s   [${adv[*]}]  ratio $(ratio "$a" "$d")"
direct_rss=$([ ${#rss_direct[@]} -gt 0 ] && median "${rss_direct[@]}" || echo "n/a")
echo "  peak RSS of the mount: streaming $(median "${rss_stream[@]}") MiB, advanced $(median "${rss_adv[@]}") MiB (xet-core's direct upload alone: $direct_rss MiB)"

small() { # small NAME FLAGS... : create $files small files, then wait until all are committed
  mount_at "$1" "${@:2}"
  local dir="$work/mnt-$1/small-$1"; mkdir "$dir"
  local t0 t1; t0=$(now)
  python3 - "$dir" "$files" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, f"f{i:05}.txt"), "w") as f:
        f.write(f"small file {i}\n")
fd = os.open(d, os.O_RDONLY); os.fsync(fd); os.close(fd)   # everything committed
PY
  t1=$(now)
  echo "  $1: $(python3 -c "print(f'{$t1-$t0:.2f}')") s for $files files ($(python3 -c "print(f'{$files/($t1-$t0):.0f}')") files/s), peak RSS $(peak_rss_mib "$mpid") MiB"
  unmount_at "$1"
}
echo "creating $files small files, until all are committed, on a fresh hubsim and fresh mounts:"
new_hub
small small-stream
small small-adv --advanced-writes --flush-debounce-ms 0
committed=$(curl -s "$ep/api/buckets/bench/b/tree/small-small-stream" -H "authorization: Bearer bench-token" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
echo "  (bucket lists $committed files under small-small-stream)"
