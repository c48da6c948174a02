#!/usr/bin/env bash
# Does anything slow down as the CAS fills? On one long-lived hubsim and one mount, rounds of
# the same work (the mount creating small files until all are committed, then xet-core
# uploading a new 64 MiB file directly, without the mount), each round's rate beside the first
# round's, with the number of shard files in the mount's xet-core shard cache (one per upload
# session, each new session rescans them). A store that does not degrade keeps the direct
# upload's ratio near 1.0. Not a test.
# Usage: bench/hubsim_store.sh [TARGET_DIR]     env: BENCH_ROUNDS (6), BENCH_FILES (200)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../target}/release
rounds=${BENCH_ROUNDS:-6}
files=${BENCH_FILES:-200}
source "$here/lib.sh"

start_hubsim --user bench:bench-token
curl -sf -X POST "$ep/api/buckets/bench/b" -H "authorization: Bearer bench-token" >/dev/null
start_mount "$work/mnt" --hf-token bench-token --cache-dir "$work/cache" bucket bench/b
echo "$(machine); $rounds rounds on one hubsim, each: $files small files committed, then a direct 64 MiB upload"

first_files=""; first_upload=""
for round in $(seq "$rounds"); do
  t0=$(now)
  python3 - "$work/mnt/r$round" "$files" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.mkdir(d)
for i in range(n):
    with open(os.path.join(d, f"f{i:05}.txt"), "w") as f:
        f.write(f"round file {d} {i}\n")
PY
  t1=$(now)
  rate=$(python3 -c "print(f'{$files/($t1-$t0):.0f}')")
  python3 -c "
import random
with open('$work/src.bin', 'wb') as f:
    f.write(random.Random($round).randbytes(64 << 20))"
  up=$("$bin/hubsim" cas-upload --endpoint "$ep" --file "$work/src.bin" | sed -n 's/.*direct_upload_mb_s=\([0-9.]*\).*/\1/p')
  first_files=${first_files:-$rate}; first_upload=${first_upload:-$up}
  shards=$(find "$work/cache/xet" -name '*.mdb' | wc -l)
  echo "round $round: $rate files/s (x$(ratio "$rate" "$first_files") of round 1; $shards shards in the mount's cache), direct upload $up MB/s (x$(ratio "$up" "$first_upload"))"
done
