#!/usr/bin/env bash
# End to end for bounded memory: `find` over a 50,000-file repo (500 directories of 100 files)
# through a FUSE mount with --inode-soft-limit 5000. The inode table (statfs `files`) is
# sampled while find runs and after; the mount's RSS is compared between a first and a second
# full walk; every file must still read back. Figures are printed, never timed.
# Usage: tests/e2e/huge_tree.sh [TARGET_DIR]   (binaries from TARGET_DIR/release)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target}/release
dirs=${E2E_TREE_DIRS:-500}
limit=${E2E_INODE_LIMIT:-5000}
source "$here/lib.sh"

echo "# building a tree of $dirs x 100 files"
python3 - "$work/tree" "$dirs" <<'PY'
import os, sys
root, dirs = sys.argv[1], int(sys.argv[2])
for d in range(dirs):
    os.makedirs(f"{root}/d{d:03}")
    for f in range(100):
        with open(f"{root}/d{d:03}/f{f:02}.txt", "w") as out:
            out.write(f"file {d}/{f}\n")
PY
start_hubsim
"$bin/hubsim" seed --endpoint "$ep" --token alice-token repo alice/huge --from "$work/tree" >/dev/null
total=$((dirs * 101))
mounted h --poll-interval-secs 0 --metadata-ttl-ms 1000 --inode-soft-limit "$limit" --lru-sweep-interval-ms 200 repo alice/huge
m=$work/mnt/h
pid=$(pgrep -f "hf-mount-fuse.*$work/mnt/h\$")
inodes() { stat -f -c %c "$m"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }

walk() { # walk N: find over the mount while sampling the inode table; sets peak_N, end_N, rss_N
  local n=$1 peak=0 c
  find "$m" > "$work/find-$n.out" &
  local f=$!
  while kill -0 $f 2>/dev/null; do c=$(inodes); [ "$c" -gt "$peak" ] && peak=$c; sleep 0.1; done
  wait $f
  sleep 1
  printf -v "peak_$n" %s "$peak"; printf -v "end_$n" %s "$(inodes)"; printf -v "rss_$n" %s "$(rss_kib)"
}
walk 1
walk 2
echo "# inode table: peak $peak_1 / $peak_2 during the walks, $end_1 / $end_2 after (limit $limit, $total entries)"
echo "# mount RSS after each walk: $rss_1 KiB, $rss_2 KiB"
check "find lists every entry" test "$(grep -c . "$work/find-1.out")" -eq $((total + 1))
check "the second walk lists the same" diff "$work/find-1.out" "$work/find-2.out"
check "after a walk the inode table is back within the limit" test "$end_1" -le "$limit" -a "$end_2" -le "$limit"
check "during a walk it stays far below the tree's size" test "$peak_1" -lt $((total / 2)) -a "$peak_2" -lt $((total / 2))
check "RSS does not grow from one walk to the next (within 10 %)" test "$rss_2" -le $((rss_1 + rss_1 / 10))
check "every file still reads back" python3 -c "
import os, sys
src, mnt = sys.argv[1], sys.argv[2]
n = 0
for d in sorted(os.listdir(src)):
    for f in sorted(os.listdir(os.path.join(src, d))):
        a = open(os.path.join(src, d, f), 'rb').read()
        b = open(os.path.join(mnt, d, f), 'rb').read()
        assert a == b, (d, f)
        n += 1
print(n, 'files match')" "$work/tree" "$m"
check "and the table is bounded again afterwards" bash -c "sleep 1.5; test \$(stat -f -c %c '$m') -le $limit"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
