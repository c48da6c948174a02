#!/usr/bin/env bash
# End to end: the Hub (and its CAS) dies in the middle of a large read and of a large write.
# The reader gets EIO within the read deadline, cached listings keep working, the mount stays
# alive and answers; when hubsim comes back on the same port and data (its CAS on a new
# address), reads work again and the pending write reaches the bucket, with no remount. Then
# SIGTERM while a program holds a file open still exits within --drain-timeout-secs.
# Usage: tests/e2e/outage.sh [TARGET_DIR]   (binaries from TARGET_DIR/release)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target}/release
source "$here/lib.sh"

data=$work/hubsim-data
hub_up() { # hub_up [PORT]: hubsim with --data on PORT (0 = any) -> $ep, $hub_pid
  : >"$work/hubsim.out"
  "$bin/hubsim" serve --data "$data" --listen "127.0.0.1:${1:-0}" --user alice:alice-token >>"$work/hubsim.out" 2>>"$work/hubsim.err" &
  hub_pid=$!; pids+=($hub_pid)
  for _ in $(seq 100); do grep -q endpoint= "$work/hubsim.out" && break; sleep 0.1; done
  ep=$(sed -n 's/^endpoint=//p' "$work/hubsim.out" | head -1)
}
hub_up
port=${ep##*:}
mkdir -p "$work/src/dir"
head -c $((200 << 20)) /dev/urandom >"$work/src/big.bin"
for i in $(seq 20); do echo "small $i" >"$work/src/dir/f$i.txt"; done
"$bin/hubsim" seed --endpoint "$ep" --token alice-token repo alice/out --from "$work/src" >/dev/null
"$bin/hubsim" seed --endpoint "$ep" --token alice-token bucket alice/outb --from "$work/src/dir" >/dev/null
api() { python3 "$here/bucket_api.py" "$ep" "$@"; }

MOUNT_EXTRA=(--no-disk-cache --read-fetch-timeout-ms 5000 --poll-interval-secs 0 --metadata-ttl-ms 500 --drain-timeout-secs 20)
mounted r --hf-token alice-token repo alice/out
mounted b --hf-token alice-token bucket alice/outb
ls "$work/mnt/r/dir" >/dev/null; ls "$work/mnt/b" >/dev/null

echo "# killing hubsim during a large read and a large write"
( dd if="$work/mnt/r/big.bin" of=/dev/null bs=1M 2>"$work/dd.err"; echo $? >"$work/dd.rc" ) &
reader=$!
python3 - "$work/mnt/b/written.bin" >"$work/writer.out" 2>&1 <<'PY' &
import os, sys, time
with open(sys.argv[1], "wb") as f:
    for i in range(64):
        f.write(bytes([i]) * (1 << 20))
        time.sleep(0.02)
    try:
        f.close()
        print("closed")
    except OSError as e:
        print("close failed:", e.strerror)
PY
writer=$!
sleep 0.5
kill -9 "$hub_pid"; wait "$hub_pid" 2>/dev/null
t0=$(date +%s)
wait "$reader"; t1=$(date +%s)
check "the reader gets an I/O error, not a hang ($((t1 - t0)) s after the Hub died)" bash -c "test \"\$(cat '$work/dd.rc')\" != 0 && grep -q 'Input/output error' '$work/dd.err' && test $((t1 - t0)) -le 40"
check "cached listings still work during the outage" bash -c "sleep 1; test \$(ls '$work/mnt/r/dir' | wc -l) -eq 20"
check "a name the mount never saw fails fast" bash -c "s=\$(date +%s); ls '$work/mnt/r/nope' 2>/dev/null; test \$((\$(date +%s) - s)) -le 15"
check "the mounts are alive" bash -c "kill -0 \$(pgrep -f 'hf-mount-fuse.*mnt/r\$') && kill -0 \$(pgrep -f 'hf-mount-fuse.*mnt/b\$') && stat '$work/mnt/b/f1.txt' >/dev/null"
wait "$writer"
check "the close during the outage returns (committed or EIO) within bounds: $(cat "$work/writer.out" 2>/dev/null)" grep -qE "closed|close failed" "$work/writer.out"

echo "# hubsim back on port $port, its CAS on a new address"
rm -f "$data/ports"
hub_up "$port"
check "hubsim is back on the same port" test "${ep##*:}" = "$port"
check "reads work again without a remount" cmp "$work/src/big.bin" "$work/mnt/r/big.bin"
python3 -c "import sys; sys.stdout.buffer.write(b''.join(bytes([i]) * (1 << 20) for i in range(64)))" >"$work/written.expected"
check "the pending write reaches the bucket" eventually bash -c "python3 '$here/bucket_api.py' '$ep' alice/outb cat written.bin | cmp - '$work/written.expected'"

echo "# SIGTERM while a program holds a file open"
python3 -c "import sys, time; f = open(sys.argv[1], 'rb'); f.read(10); time.sleep(120)" "$work/mnt/b/f2.txt" &
holder=$!; pids+=($holder)
sleep 0.5
check "SIGTERM exits within --drain-timeout-secs although a file is open" bash -c "pid=\$(pgrep -f 'hf-mount-fuse.*mnt/b\$'); kill -TERM \$pid; for i in \$(seq 200); do kill -0 \$pid 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
kill "$holder" 2>/dev/null

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
