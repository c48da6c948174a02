#!/usr/bin/env bash
# End to end for buckets: hubsim on loopback, real read-write FUSE mounts, real tools; every
# change is cross-checked through the Python client (`bucket_api.py`), not only through the mount.
# A local mirror ($ref) gets the same operations; after a remount everything must match it.
# Usage: tests/e2e/bucket_mount.sh [TARGET_DIR]   (binaries from TARGET_DIR/release)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target}/release
write_mib=${E2E_WRITE_MIB:-300}
source "$here/lib.sh"

start_hubsim
api() { python3 "$here/bucket_api.py" "$ep" "$@"; }
# Namespace changes reach the bucket asynchronously (fsync waits for them): `eventually`.
in_bucket() { local t; t=$(api alice/bk tree) && grep -q "^$1 " <<<"$t"; }
not_in_bucket() { local t; t=$(api alice/bk tree) && ! grep -q "^$1" <<<"$t"; }
hash_of() { api alice/bk tree | awk -v p="$1" '$1 == p { print $3 }'; }
bucket_has() { test "$(api alice/bk cat "$1")" = "$2"; }
mnt=$work/mnt/s
ref=$work/ref

echo "# seeding bucket alice/bk"
mkdir -p "$ref/docs/deep" "$ref/logs"
echo "hello bucket" > "$ref/hello.txt"
head -c 3000000 /dev/urandom > "$ref/docs/deep/blob.bin"
for i in $(seq 20); do echo "log line $i" > "$ref/logs/$i.log"; done
"$bin/hubsim" seed --endpoint "$ep" --token alice-token bucket alice/bk --from "$ref" >/dev/null

mounted s --hf-token alice-token bucket alice/bk
check "seeded tree lists exactly" diff <(listing "$ref") <(listing "$mnt")
check "seeded files read back" bash -c "cd '$ref' && find . -type f -print0 | xargs -0 sha256sum | (cd '$mnt' && sha256sum --quiet -c)"

echo "created" > "$mnt/new.txt"; echo "created" > "$ref/new.txt"
check "create is committed on close" bucket_has new.txt created
echo "second version" > "$mnt/new.txt"; echo "second version" > "$ref/new.txt"
check "overwrite (O_TRUNC) replaces the content" bucket_has new.txt "second version"
echo more >> "$ref/new.txt"
check "append works in streaming mode" bash -c "echo more >> '$mnt/new.txt' && test \"\$(cat '$mnt/new.txt')\" = \"\$(printf 'second version\nmore')\""
check "and is committed on close" bucket_has new.txt "$(printf 'second version\nmore')"
mkdir -p "$mnt/patterns" "$ref/patterns"
check "every write pattern works in streaming mode (checkpoints, fallocate, holes, rewrites, edits, appends, read-your-writes, replace over an open file)" python3 "$here/write_patterns.py" "$mnt/patterns" "$ref/patterns"
touch "$mnt/empty.txt"; touch "$ref/empty.txt"
check "an empty file is committed" in_bucket empty.txt

mkdir "$mnt/newdir"; mkdir "$ref/newdir"
check "mkdir makes a directory in the mount" test -d "$mnt/newdir"
check "an empty directory is not in the bucket" not_in_bucket newdir/
check "rmdir of an empty directory" bash -c "rmdir '$mnt/newdir' && rmdir '$ref/newdir' && test ! -e '$mnt/newdir'"
mkdir "$mnt/made"; echo inside > "$mnt/made/f.txt"; mkdir "$ref/made"; echo inside > "$ref/made/f.txt"
check "a file makes its directory real" in_bucket made/f.txt
check "rmdir of a non-empty directory is ENOTEMPTY" bash -c "rmdir '$mnt/made' 2>&1 | grep -q 'not empty'"

h=$(hash_of docs/deep/blob.bin)
mv "$mnt/docs/deep/blob.bin" "$mnt/docs/moved.bin"; mv "$ref/docs/deep/blob.bin" "$ref/docs/moved.bin"
check "rename of a file is add+delete by hash" eventually bash -c "t=\$(python3 '$here/bucket_api.py' '$ep' alice/bk tree); echo \"\$t\" | grep -q '^docs/moved.bin 3000000 $h' && ! echo \"\$t\" | grep -q '^docs/deep/blob.bin'"
mv "$mnt/logs" "$mnt/archive"; mv "$ref/logs" "$ref/archive"
check "rename of a directory moves every descendant" bash -c "t=\$(python3 '$here/bucket_api.py' '$ep' alice/bk tree); test \$(echo \"\$t\" | grep -c '^archive/') -eq 20 && ! echo \"\$t\" | grep -q '^logs/'"
check "renamed files read back" cmp "$ref/archive/7.log" "$mnt/archive/7.log"
rm "$mnt/archive/1.log"; rm "$ref/archive/1.log"
check "unlink deletes from the bucket" eventually not_in_bucket "archive/1.log "
ln "$mnt/hello.txt" "$mnt/hello-link.txt"; cp "$ref/hello.txt" "$ref/hello-link.txt"
hello_hash=$(hash_of hello.txt)
check "link() is a server-side copy with the same hash" eventually bash -c "python3 '$here/bucket_api.py' '$ep' alice/bk tree | grep -q '^hello-link.txt 13 $hello_hash'"
ln -s hello.txt "$mnt/sym"
check "symlink and readlink (mount only)" bash -c "test \"\$(readlink '$mnt/sym')\" = hello.txt && test \"\$(cat '$mnt/sym')\" = 'hello bucket'"
rm "$mnt/sym"
check "chmod and chown are accepted" bash -c "chmod 600 '$mnt/hello.txt' && test \$(stat -c %a '$mnt/hello.txt') = 600 && chown 1234 '$mnt/hello.txt' && test \$(stat -c %u '$mnt/hello.txt') = 1234"
check "statfs works" df "$mnt"

python3 "$here/make_tree.py" "$work/tarsrc" 1 0 >/dev/null
tar -C "$work/tarsrc" -cf "$work/tree.tar" .
check "tar -x of a tree" bash -c "mkdir '$mnt/untarred' && tar -C '$mnt/untarred' -xf '$work/tree.tar'"
mkdir "$ref/untarred" && tar -C "$ref/untarred" -xf "$work/tree.tar"
check "tar -x tree matches" bash -c "cd '$ref/untarred' && find . -type f -print0 | xargs -0 sha256sum | (cd '$mnt/untarred' && sha256sum --quiet -c)"

head -c $((write_mib << 20)) /dev/urandom > "$work/big.src"
check "dd of a ${write_mib} MiB file" dd if="$work/big.src" of="$mnt/big.bin" bs=1M status=none
cp "$work/big.src" "$ref/big.bin"
check "the big file is in the bucket at full size" bash -c "python3 '$here/bucket_api.py' '$ep' alice/bk tree | grep -q '^big.bin $((write_mib << 20)) '"
check "the bucket (through Python) matches the mirror" bash -c "cd '$ref' && find . -type f -print0 | xargs -0 sha256sum | LC_ALL=C sort -k2 > '$work/ref.sums'; python3 '$here/bucket_api.py' '$ep' alice/bk sums | LC_ALL=C sort -k2 | diff '$work/ref.sums' -"

remount() {
  local pid; pid=$(pgrep -f "hf-mount-fuse.*$work/mnt/s\$")
  kill -TERM "$pid"; for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  cp "$work/mount-s.log" "$work/mount-s.first.log"
  ! kill -0 "$pid" 2>/dev/null && mounted s --hf-token alice-token bucket alice/bk
}
# The unmount line's "N streamed": bytes uploaded while their file was being written.
streamed() { sed -n 's/.* bytes, \([0-9]*\) streamed).*/\1/p' "$1" | tail -1; }
check "unmount and remount" remount
check "the big file was uploaded while dd wrote it (streamed, not whole at close)" \
  test "$(streamed "$work/mount-s.first.log")" -ge $((write_mib << 20))
check "after remount: same files (directories made real by files)" diff <(cd "$ref" && find . -type f | LC_ALL=C sort) <(cd "$mnt" && find . -type f | LC_ALL=C sort)
check "after remount: sha256 of everything matches" bash -c "cd '$ref' && find . -type f -print0 | xargs -0 sha256sum | (cd '$mnt' && sha256sum --quiet -c)"
check "tar mtimes persisted to the bucket" bash -c "diff <(cd '$ref/untarred' && find . -type f -exec stat -c '%n %Y' {} + | sort) <(cd '$mnt/untarred' && find . -type f -exec stat -c '%n %Y' {} + | sort)"

echo "# hostile listings"
api alice/bk put scan/good1.txt one; api alice/bk put scan/good2.txt two
fault "$(python3 "$here/hostile_listing.py" "$ep" alice/bk scan)"
check "a listing with hostile entries shows only the true ones" eventually bash -c "test \"\$(ls '$mnt/scan' | tr '\n' ' ')\" = 'good1.txt good2.txt '"
check "and they read back" bash -c "test \"\$(cat '$mnt/scan/good1.txt' '$mnt/scan/good2.txt')\" = onetwo"
check "a directory listed with hostile entries can be moved" mv "$mnt/scan" "$mnt/moved-scan"
curl -sf -X DELETE "$ep/_emulator/faults" >/dev/null
check "the move touched only the true files" eventually bash -c "t=\$(python3 '$here/bucket_api.py' '$ep' alice/bk tree | cut -d' ' -f1); grep -qx moved-scan/good1.txt <<<\"\$t\" && grep -qx moved-scan/good2.txt <<<\"\$t\" && ! grep -q '^scan/\\|victim\\|other/\\|abs.txt\\|inside-a-file' <<<\"\$t\""
check "the left-out entries are logged" grep -q "left out an entry the Hub sent" "$work/mount-s.log"
api alice/bk rm moved-scan/good1.txt; api alice/bk rm moved-scan/good2.txt

echo "# advanced writes"
# dd writes through a dup of its first descriptor, whose close (a flush) comes before any write;
# the file is written for longer than the debounce and must still stream to its end.
mounted st --hf-token alice-token --advanced-writes --flush-debounce-ms 200 bucket alice/bk
head -c $((100 << 20)) /dev/urandom > "$work/adv.src"
check "dd conv=fsync of 100 MiB in advanced mode" dd if="$work/adv.src" of="$work/mnt/st/adv.bin" bs=1M conv=fsync status=none
cp "$work/adv.src" "$ref/adv.bin"
check "and it is in the bucket at full size" bash -c "python3 '$here/bucket_api.py' '$ep' alice/bk tree | grep -q '^adv.bin $((100 << 20)) '"
check "unmount of the advanced mount" fusermount3 -u "$work/mnt/st"
check "it was streamed whole while written, and uploaded once" eventually bash -c "grep -q ' 1 uploads ($((100 << 20)) bytes, $((100 << 20)) streamed)' '$work/mount-st.log'"
mounted a --hf-token alice-token --advanced-writes --flush-debounce-ms 200 bucket alice/bk
am=$work/mnt/a
echo "again" >> "$am/new.txt"
check "append in advanced mode" bash -c "test \"\$(cat '$am/new.txt')\" = \"\$(printf 'second version\nmore\nagain')\""
mkdir -p "$am/apatterns" "$work/apatterns"
check "every write pattern works in advanced mode" python3 "$here/write_patterns.py" "$am/apatterns" "$work/apatterns"
check "and the bucket has them (after a directory fsync)" bash -c "python3 -c 'import os,sys; os.fsync(os.open(sys.argv[1], os.O_RDONLY))' '$am/apatterns' && cd '$work/apatterns' && find . -type f -print0 | xargs -0 sha256sum | sed 's| ./| ./apatterns/|' | LC_ALL=C sort -k2 > '$work/apatterns.sums' && python3 '$here/bucket_api.py' '$ep' alice/bk sums | grep ' ./apatterns/' | LC_ALL=C sort -k2 | diff '$work/apatterns.sums' -"
check "random writes, seek, overwrite and read-your-writes" python3 - "$am/edit.bin" <<'PY'
import os, sys, random
p = sys.argv[1]
rng = random.Random(5); model = bytearray()
with open(p, "w+b") as f:
    for _ in range(300):
        off = rng.randrange(0, 200_000); data = rng.randbytes(rng.randrange(1, 5000))
        f.seek(off); f.write(data)
        if len(model) < off: model.extend(b"\0" * (off - len(model)))
        model[off:off + len(data)] = data
    f.flush(); f.seek(0); assert f.read() == bytes(model), "read-your-writes"
    f.truncate(150_000); del model[150_000:]
    os.fsync(f.fileno())
assert open(p, "rb").read() == bytes(model)
open("/tmp/hfm-e2e-edit.expected", "wb").write(model)
PY
check "fsync returned only after the commit (checked at once)" bash -c "python3 '$here/bucket_api.py' '$ep' alice/bk cat edit.bin | cmp - /tmp/hfm-e2e-edit.expected"
check "existing file edited in place" bash -c "printf 'XY' | dd of='$am/hello.txt' bs=1 seek=2 conv=notrunc status=none && test \"\$(cat '$am/hello.txt')\" = 'heXYo bucket'"
check "truncate extends with zeros" bash -c "truncate -s 20 '$am/hello.txt' && test \$(stat -c %s '$am/hello.txt') = 20 && test \"\$(tail -c 7 '$am/hello.txt' | od -An -tx1 | tr -d ' ')\" = 00000000000000"
check "debounced upload reaches the bucket" bash -c "for i in \$(seq 50); do python3 '$here/bucket_api.py' '$ep' alice/bk tree | grep -q '^hello.txt 20 ' && exit 0; sleep 0.2; done; exit 1"
rm -f /tmp/hfm-e2e-edit.expected

echo "# remote changes"
mounted p --hf-token alice-token --poll-interval-secs 1 --metadata-ttl-ms 300 bucket alice/bk
pm=$work/mnt/p
cat "$pm/hello-link.txt" >/dev/null
api alice/bk put remote-new.txt "from python"
api alice/bk put hello-link.txt "changed remotely"
api alice/bk rm empty.txt
check "a remote add appears after the poll" eventually grep -q "from python" "$pm/remote-new.txt"
check "a remote change appears after the poll" eventually grep -q "changed remotely" "$pm/hello-link.txt"
check "a remote delete disappears after the poll" eventually test ! -e "$pm/empty.txt"

mounted lw --hf-token alice-token --advanced-writes --flush-debounce-ms 60000 --poll-interval-secs 1 --metadata-ttl-ms 300 bucket alice/bk
echo "mine" > "$work/mnt/lw/conflict.txt"
api alice/bk put conflict.txt "theirs"
sleep 3
check "a poll never overwrites a file with uncommitted local changes" grep -qx mine "$work/mnt/lw/conflict.txt"
check "and says in the log that the bucket's copy changed meanwhile" eventually grep -q "conflict.txt changed in the bucket .* the local version will replace it" "$work/mount-lw.log"
check "and the local change wins once saved" bash -c "python3 -c 'import os,sys; os.fsync(os.open(sys.argv[1], os.O_RDONLY))' '$work/mnt/lw/conflict.txt' && test \"\$(python3 '$here/bucket_api.py' '$ep' alice/bk cat conflict.txt)\" = mine"
mounted win --hf-token alice-token --advanced-writes --flush-debounce-ms 600000 --flush-max-batch-window-ms 1000 bucket alice/bk
echo "windowed" > "$work/mnt/win/windowed.txt"
check "--flush-max-batch-window-ms caps the debounce" eventually bucket_has windowed.txt windowed
mounted sub --hf-token alice-token bucket alice/bk/docs
check "a bucket prefix mount shows that folder's files" diff <(cd "$ref/docs" && find . -type f | LC_ALL=C sort) <(cd "$work/mnt/sub" && find . -type f | LC_ALL=C sort)
echo "under the prefix" > "$work/mnt/sub/inside.txt"
check "and writes land under the prefix" bucket_has docs/inside.txt "under the prefix"
echo "under the prefix" > "$ref/docs/inside.txt"
mounted m --hf-token alice-token --metadata-ttl-minimal --poll-interval-secs 0 bucket alice/bk
ls "$work/mnt/m" >/dev/null
api alice/bk put minimal.txt "fresh"
check "--metadata-ttl-minimal sees a remote add at once (no poll)" grep -qx fresh "$work/mnt/m/minimal.txt"

echo "# secrets"
RUST_LOG=trace mounted t --hf-token alice-token bucket alice/bk
cat "$work/mnt/t/hello.txt" "$work/mnt/t/docs/moved.bin" >/dev/null
echo traced > "$work/mnt/t/traced.txt"; echo traced > "$ref/traced.txt"
fusermount3 -u "$work/mnt/t"
check "a trace-level log is written" grep -q TRACE "$work/mount-t.log"
check "and names no secret (the Hub token, xet tokens)" bash -c "! grep -e alice-token -e hubsim-xet- '$work/mount-t.log'"

echo "# errors"
check "a --read-only bucket mount refuses writes (EROFS)" bash -c "mkdir -p '$work/mnt/ro' && ( '$bin/hf-mount-fuse' --hub-endpoint '$ep' --hf-token alice-token --read-only bucket alice/bk '$work/mnt/ro' >/dev/null 2>&1 & ); for i in \$(seq 50); do mountpoint -q '$work/mnt/ro' && break; sleep 0.1; done; (echo x > '$work/mnt/ro/x') 2>&1 | grep -q 'Read-only'; r=\$?; fusermount3 -u '$work/mnt/ro'; exit \$r"
refused() { # refused PATTERN ARGS...
  local pattern=$1; shift
  mkdir -p "$work/mnt/refused"
  timeout 20 "$bin/hf-mount-fuse" --hub-endpoint "$ep" "$@" "$work/mnt/refused" >"$work/refused.log" 2>&1
  local rc=$?; cat "$work/refused.log"; [ $rc -ne 0 ] && grep -q "$pattern" "$work/refused.log"
}
check "another user's bucket refused for writing" refused "write access" --hf-token bob-token bucket alice/bk
check "unknown bucket refused" refused "HTTP 40" --hf-token alice-token bucket alice/nope
"$bin/hubsim" seed --endpoint "$ep" --token alice-token repo alice/arepo --from "$ref/made" >/dev/null
check "a repo id is pointed to the repo command" refused "is a repo" --hf-token alice-token bucket alice/arepo
fault '{"path_contains":"/batch","count":4,"status":503}'
check "a commit failing past its retries fails fsync with EIO" python3 -c "
import os, errno
fd = os.open('$am/failing.txt', os.O_WRONLY | os.O_CREAT); os.write(fd, b'keep me'); 
try: os.fsync(fd); raise SystemExit('fsync succeeded')
except OSError as e: assert e.errno == errno.EIO, e
os.close(fd)"
curl -sf -X DELETE "$ep/_emulator/faults" >/dev/null
check "and the write is kept, then committed on the next fsync" python3 -c "
import os
fd = os.open('$am/failing.txt', os.O_WRONLY); os.fsync(fd); os.close(fd)"
check "the failed-then-retried file is in the bucket" bucket_has failing.txt "keep me"
check "the failure was logged with the file's path" grep -q "failing.txt" "$work/mount-a.log"
fault '{"path_contains":"/batch","count":1,"status":413}'
check "413 from the Hub is ENOSPC" python3 -c "
import os, errno
fd = os.open('$am/toobig.txt', os.O_WRONLY | os.O_CREAT); os.write(fd, b'x')
try: os.fsync(fd); raise SystemExit('fsync succeeded')
except OSError as e: assert e.errno == errno.ENOSPC, e"
curl -sf -X DELETE "$ep/_emulator/faults" >/dev/null

# A path the Hub refuses for good (longer than 4096 bytes, reached through relative paths):
# that file's fsync fails with EIO, it stays readable in the mount, and the rest still commits.
deep_name=$(printf 'n%.0s' $(seq 250))
check "fsync of a file at a path the Hub refuses is EIO" python3 -c "
import os, errno
os.chdir('$am')
for _ in range(18):
    os.mkdir('$deep_name'); os.chdir('$deep_name')
fd = os.open('deep.txt', os.O_WRONLY | os.O_CREAT); os.write(fd, b'kept here')
try: os.fsync(fd); raise SystemExit('fsync succeeded')
except OSError as e: assert e.errno == errno.EIO, e
os.close(fd)
assert open('deep.txt').read() == 'kept here', 'the refused file lost its content'"
check "other files still commit while one is refused" python3 -c "
import os
fd = os.open('$am/beside-refused.txt', os.O_WRONLY | os.O_CREAT); os.write(fd, b'fine'); os.fsync(fd)"
check "the file beside the refused one is in the bucket" bucket_has beside-refused.txt fine
check "the refusal was logged with the Hub's reason" grep -q "the Hub refuses .*deep.txt: HTTP 400" "$work/mount-a.log"

fault '{"path_contains":"/batch","count":1,"status":403}'
check "403 from the Hub is EACCES" python3 -c "
import os, errno
fd = os.open('$am/denied.txt', os.O_WRONLY | os.O_CREAT); os.write(fd, b'x')
try: os.fsync(fd); raise SystemExit('fsync succeeded')
except OSError as e: assert e.errno == errno.EACCES, e"
fault '{"path_contains":"/batch","count":2,"status":429}'
check "429s are retried after their RateLimit delay, then succeed" python3 -c "
import os
fd = os.open('$am/limited.txt', os.O_WRONLY | os.O_CREAT); os.write(fd, b'patience'); os.fsync(fd)"
check "the rate-limited file is in the bucket" bucket_has limited.txt patience
curl -sf -X DELETE "$ep/_emulator/faults" >/dev/null

check "SIGTERM drains pending writes before exiting" bash -c "echo drained > '$am/late.txt'; pid=\$(pgrep -f 'hf-mount-fuse.*$work/mnt/a\$'); kill -TERM \$pid; for i in \$(seq 100); do kill -0 \$pid 2>/dev/null || break; sleep 0.1; done; ! kill -0 \$pid 2>/dev/null && test \"\$(python3 '$here/bucket_api.py' '$ep' alice/bk cat late.txt)\" = drained"
check "and gives up on the refused path at once, saying so" grep -q "unmounting: the Hub still refuses .*deep.txt" "$work/mount-a.log"
check "the mount's own commits are never taken for someone else's change" bash -c "! grep -h 'changed in the bucket' '$work'/mount-*.log | grep -v 'conflict.txt changed'"
check "an honest Hub's listings leave nothing out" bash -c "! grep -l 'left out an entry' \$(ls '$work'/mount-*.log | grep -v mount-s.log)"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
