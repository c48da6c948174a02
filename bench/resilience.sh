#!/usr/bin/env bash
# Resilience figures of the mount against hubsim on loopback, each beside its bound: how long a
# reader waits for EIO once the Hub and CAS die, how long until reads work again once they are
# back (same port, same data, CAS on a new address), what a `kill -9` of a mount with unsaved
# writes loses (nothing is the bound) and how long the next mount takes to commit it, and the
# mount's peak RSS with 1,000 files open for writing. Not a test: nothing passes or fails.
# Usage: bench/resilience.sh [TARGET_DIR]   env: BENCH_READ_TIMEOUT_MS (30000), BENCH_OPEN (1000)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../target}/release
timeout_ms=${BENCH_READ_TIMEOUT_MS:-30000}
open_files=${BENCH_OPEN:-1000}
source "$here/lib.sh"
echo "$(machine)"

data=$work/hubsim-data
hub_up() { # hub_up [PORT] -> $ep, $hubsim_pid (persistent data, so a restart keeps everything)
  : >"$work/hubsim.out"
  "$bin/hubsim" serve --data "$data" --listen "127.0.0.1:${1:-0}" --user bench:bench-token >>"$work/hubsim.out" 2>>"$work/hubsim.err" &
  hubsim_pid=$!; pids+=($hubsim_pid)
  for _ in $(seq 100); do grep -q endpoint= "$work/hubsim.out" && break; sleep 0.1; done
  ep=$(sed -n 's/^endpoint=//p' "$work/hubsim.out" | tail -1)
}
mount_at() { # mount_at NAME ARGS... -> $mpid
  mount_log="$work/mount-$1.log" start_mount "$work/mnt-$1" --hf-token bench-token --cache-dir "$work/cache-$1" "${@:2}"
}
hub_up
port=${ep##*:}
mkdir -p "$work/src"
head -c $((512 << 20)) /dev/urandom >"$work/src/big.bin"
"$bin/hubsim" seed --endpoint "$ep" --token bench-token repo bench/r --from "$work/src" >/dev/null
curl -sf -X POST "$ep/api/buckets/bench/b" -H "authorization: Bearer bench-token" >/dev/null

echo "# the Hub and its CAS die during a read"
mount_at r --no-disk-cache --read-fetch-timeout-ms "$timeout_ms" --poll-interval-secs 0 repo bench/r
(set +e; dd if="$work/mnt-r/big.bin" of=/dev/null bs=1M iflag=direct 2>"$work/dd.err"; echo $? >"$work/dd.rc") &
reader=$!
sleep 1
kill -9 "$hubsim_pid"; wait "$hubsim_pid" 2>/dev/null || true
t0=$(now); wait "$reader" || true; t1=$(now)
echo "reader sees EIO $(python3 -c "print(f'{$t1-$t0:.1f}')") s after the Hub died (dd: $(grep -o "Input/output error" "$work/dd.err" | head -1), exit $(cat "$work/dd.rc")) | bound: --read-fetch-timeout-ms $timeout_ms plus one attempt's timeout"
rm -f "$data/ports"
hub_up "$port"
t0=$(now)
until dd if="$work/mnt-r/big.bin" of=/dev/null bs=1M count=4 skip=400 iflag=direct 2>/dev/null; do sleep 0.1; done
t1=$(now)
echo "reads work again $(python3 -c "print(f'{$t1-$t0:.1f}')") s after the Hub is back, no remount | bound: the breaker's pause (≤ 30 s) and one attempt"
fusermount3 -u "$work/mnt-r"

echo "# kill -9 of an advanced mount with unsaved writes, then the next mount"
mount_at k --advanced-writes --flush-debounce-ms 600000 bucket bench/b
python3 - "$work/mnt-k" "$work/written.sums" <<'PY'
import hashlib, os, random, sys
mnt, sums = sys.argv[1:]
r = random.Random(1)
os.makedirs(f"{mnt}/k", exist_ok=True)
with open(sums, "w") as out:
    for i in range(100):
        data = r.randbytes(r.randrange(1, 2 << 20))
        with open(f"{mnt}/k/{i}.bin", "wb") as f:
            f.write(data)
        out.write(f"{hashlib.sha256(data).hexdigest()}  ./k/{i}.bin\n")
PY
written=$(du -cb "$work"/cache-k/journal/*/*/ 2>/dev/null | tail -1 | cut -f1)
kill -9 "$mpid"; wait "$mpid" 2>/dev/null || true
fusermount3 -u -z "$work/mnt-k" 2>/dev/null || true
t0=$(now)
mount_at k bucket bench/b
until grep -q "recovery from" "$work/mount-k.log"; do sleep 0.05; done
t1=$(now)
HF_TOKEN=bench-token python3 "$here/../tests/e2e/bucket_api.py" "$ep" bench/b sums | sort -k2 >"$work/bucket.sums"
same=$(sort -k2 "$work/written.sums" | comm -12 - "$work/bucket.sums" | wc -l)
echo "after kill -9: $same of 100 closed-but-unsaved files ($written bytes on disk in the journal) recovered, in $(python3 -c "print(f'{$t1-$t0:.1f}')") s from the remount | bound: 100 of 100"
grep -o "recovery from .*" "$work/mount-k.log" | sed 's/^recovery from [^:]*: /  report: /'
fusermount3 -u "$work/mnt-k"; wait "$mpid" 2>/dev/null || true

echo "# $open_files files open for writing at once"
ulimit -n $((open_files + 100))
for mode in streaming advanced; do
  flags=(); [ $mode = advanced ] && flags=(--advanced-writes)
  mount_at "o$mode" "${flags[@]}" bucket bench/b
  python3 - "$work/mnt-o$mode" "$open_files" "$mpid" <<'PY'
import os, sys
mnt, n, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(f"{mnt}/open", exist_ok=True)
fds = [os.open(f"{mnt}/open/{i}.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC) for i in range(n)]
for fd in fds:
    os.write(fd, os.urandom(64 << 10))
rss = [l for l in open(f"/proc/{pid}/status") if l.startswith(("VmRSS", "VmHWM"))]
print(f"  {n} files open, 64 KiB written to each: " + ", ".join(" ".join(l.split()) for l in rss))
for fd in fds:
    os.close(fd)
PY
  echo "  ($mode mode; bound: the written bytes, $((open_files * 64 / 1024)) MiB, plus the mount's base RSS)"
  fusermount3 -u "$work/mnt-o$mode"; wait "$mpid" 2>/dev/null || true
done
