#!/usr/bin/env bash
# End to end: `kill -9` of a bucket mount while 21 files are being written (closed but not
# saved, fsync'd, in the middle of a write, renamed into place, edited in place), plus one file
# changed in the bucket meanwhile. The next mount of the bucket with the same cache dir finds
# the journal, commits every acknowledged byte (checked through the Python client against a
# mirror of what each write returned), keeps both versions of the file changed remotely (the
# log names the recovered one), reports what it recovered, and leaves no journal behind. Then
# 8 parallel writers x 200 files with 4 readers on one mount, every file checked remotely.
# Usage: tests/e2e/crash_recovery.sh [TARGET_DIR]   (binaries from TARGET_DIR/release)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target}/release
source "$here/lib.sh"
export HERE=$here

start_hubsim
api() { python3 "$here/bucket_api.py" "$ep" "$@"; }
ref=$work/ref
mkdir -p "$ref/base" "$work/seed/base"
echo "original content" >"$work/seed/base/edited.txt"; cp "$work/seed/base/edited.txt" "$ref/base/"
echo "remote v1" >"$work/seed/base/changed.txt"
"$bin/hubsim" seed --endpoint "$ep" --token alice-token bucket alice/crash --from "$work/seed" >/dev/null
mnt=$work/mnt/k
journal=$work/cache-k/journal/alice--crash

echo "# writing, then kill -9 of the mount"
# Closed files wait 10 minutes before their upload: at the kill, only the journal has them.
mounted k --hf-token alice-token --advanced-writes --flush-debounce-ms 600000 --poll-interval-secs 1 bucket alice/crash
printf 'local v2' >"$mnt/base/changed.txt"
api alice/crash put base/changed.txt "remote v3"
check "a remote change over local uncommitted changes is detected and logged" eventually grep -q "base/changed.txt changed in the bucket .* while it has local changes not yet committed" "$work/mount-k.log"
python3 "$here/crash_writer.py" "$mnt" "$ref" "$work/ready" >"$work/writer.out" 2>&1 &
writer=$!; pids+=($writer)
for _ in $(seq 600); do [ -e "$work/ready" ] && break; kill -0 $writer 2>/dev/null || break; sleep 0.1; done
check "the writer wrote its 21 files" test -e "$work/ready"
check "the fsync'd files are in the bucket before the kill" bash -c "cd '$ref' && for f in synced/*.bin; do test \"\$(python3 '$here/bucket_api.py' '$ep' alice/crash cat \$f | sha256sum)\" = \"\$(sha256sum < \$f)\" || exit 1; done"
check "the closed files are not (their upload is 10 minutes away)" bash -c "! python3 '$here/bucket_api.py' '$ep' alice/crash tree | grep -q '^closed/'"
pkill -9 -f "hf-mount-fuse.*$mnt\$"; sleep 0.2
kill -9 $writer 2>/dev/null; wait $writer 2>/dev/null
fusermount3 -u -z "$mnt" 2>/dev/null
check "the killed mount left a journal" bash -c "ls '$journal'/*/*.record >/dev/null"

echo "# the next mount recovers it"
started=$(date +%s%N)
mounted k --hf-token alice-token bucket alice/crash
check "recovery reports what it committed" eventually grep -q "recovery from .*: 17 files committed .* 1 kept under new names, 0 already in the bucket, 0 left for the next mount" "$work/mount-k.log"
echo "     remount to recovered: $(( ($(date +%s%N) - started) / 1000000 )) ms; $(grep -o 'recovery from .*' "$work/mount-k.log" | sed 's/.*: //')"
api alice/crash sums | LC_ALL=C sort -k2 >"$work/bucket.sums"
check "every acknowledged byte reached the bucket (closed, fsync'd, mid-write, renamed, edited)" bash -c "cd '$ref' && find . -type f -print0 | xargs -0 sha256sum | LC_ALL=C sort -k2 | while read -r sum path; do grep -qx \"\$sum  \$path\" '$work/bucket.sums' || { echo \"missing or different: \$path\"; exit 1; }; done"
check "the temporary name of the renamed checkpoint is not in the bucket" bash -c "! grep -q 'model.bin.tmp' '$work/bucket.sums'"
check "the remote change is kept at its path" test "$(api alice/crash cat base/changed.txt)" = "remote v3"
recovered=$(grep -o 'saved as base/changed.recovered-[0-9-]*.txt' "$work/mount-k.log" | sed 's/saved as //')
check "the local version is kept under the name the log gives" test "$(api alice/crash cat "$recovered")" = "local v2"
check "the recovered journal is gone" bash -c "test \$(ls '$journal' | wc -l) -eq 1"
check "safetensors loads the recovered checkpoint through the mount" python3 -c "
from safetensors.numpy import load_file; import numpy as np
t = load_file('$mnt/ckpt/weights.safetensors'); assert t['w'].shape == (100, 1000) and t['w'][99, 999] == 99999 and t['b'].sum() == 1000"
check "the mount shows the recovered files" eventually bash -c "test \"\$(ls '$mnt/closed' | wc -l)\" -eq 8 && cmp '$ref/open/3.bin' '$mnt/open/3.bin'"

echo "# a journal the Hub cannot take now is kept for the mount after"
mounted j --hf-token alice-token --advanced-writes --flush-debounce-ms 600000 bucket alice/crash
echo "kept for later" >"$work/mnt/j/later.txt"
pkill -9 -f "hf-mount-fuse.*$work/mnt/j\$"; fusermount3 -u -z "$work/mnt/j" 2>/dev/null
fault '{"path_contains":"/batch","count":1000,"status":503}'
mounted j --hf-token alice-token bucket alice/crash
check "a recovery that cannot commit says so and keeps the journal" eventually grep -q "could not recover later.txt yet .*kept in" "$work/mount-j.log"
curl -sf -X DELETE "$ep/_emulator/faults" >/dev/null
pid=$(pgrep -f "hf-mount-fuse.*$work/mnt/j\$"); kill -TERM "$pid"; for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
mounted j --hf-token alice-token bucket alice/crash
check "the mount after commits it" eventually bash -c "test \"\$(python3 '$here/bucket_api.py' '$ep' alice/crash cat later.txt)\" = 'kept for later'"

echo "# --max-staging-size"
mounted cap --hf-token alice-token --advanced-writes --max-staging-size 1M bucket alice/crash
check "writes past the staging bound get ENOSPC; what was acknowledged is kept and committed; committed files free their share" python3 - "$work/mnt/cap" "$ep" <<'PY'
import errno, os, subprocess, sys
mnt, ep = sys.argv[1:]
os.makedirs(f"{mnt}/cap", exist_ok=True)
def fill(name, limit=None):
    fd = os.open(f"{mnt}/{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    written = 0
    try:
        while limit is None or written < limit:
            written += os.write(fd, b"x" * 65536)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
        return fd, written, True
    return fd, written, False
fd, n, full = fill("cap/a.bin", 600_000)
assert not full, "600 KB fit in 1 MiB"
os.fsync(fd); os.close(fd)
fd, b, full = fill("cap/b.bin")
assert full and 600_000 <= b <= 1 << 20, (full, b)
fd2, c, full2 = fill("cap/c.bin", 65536)
assert full2 and c == 0, "b.bin holds the staging space while it is unsaved"
os.close(fd2)
os.fsync(fd); os.close(fd)
got = subprocess.run([sys.executable, os.path.join(os.environ["HERE"], "bucket_api.py"), ep, "alice/crash", "cat", "cap/b.bin"], capture_output=True, check=True).stdout
assert got == b"x" * b, (len(got), b)
fd, c, full = fill("cap/c.bin", 900_000)
assert not full, "b.bin, committed and closed, freed its share"
os.fsync(fd); os.close(fd)
PY

echo "# 8 writers x 200 files and 4 readers on one mount"
check "every writer and reader ran without error" bash -c "python3 '$here/parallel_writers.py' '$work/mnt/j' | LC_ALL=C sort -k2 > '$work/par.sums'"
check "every one of the 1,600 files is in the bucket with its bytes" bash -c "python3 '$here/bucket_api.py' '$ep' alice/crash sums | grep ' ./par/' | LC_ALL=C sort -k2 | diff '$work/par.sums' - && test \$(wc -l < '$work/par.sums') -eq 1600"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
