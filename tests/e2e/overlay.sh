#!/usr/bin/env bash
# End to end for --overlay: the mount point's own files are a writable local layer over a repo
# or bucket that is never written. Through real FUSE mounts and an NFS server (userspace
# clients) against hubsim: merged listings (local wins, layer symlinks hidden), changes in the
# layer, remote-only entries refused, parents created in the layer, a remote file shown again
# when the local one that hid it goes, hostile names, a symlink planted in the layer while
# mounted, persistence across remounts, and `--overlay --read-only`.
# Usage: tests/e2e/overlay.sh [TARGET_DIR]   (binaries from TARGET_DIR/release)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target}/release
source "$here/lib.sh"
api() { python3 "$here/bucket_api.py" "$ep" "$@"; }
export -f api eventually
export here

start_hubsim
export ep
mkdir -p "$work/src/sub" "$work/src/models"
echo remote-readme > "$work/src/README.md"
echo remote-a > "$work/src/sub/a.txt"
echo remote-config > "$work/src/models/config.json"
head -c 2000000 /dev/urandom > "$work/src/models/weights.bin"
"$bin/hubsim" seed --endpoint "$ep" --token alice-token repo alice/ov --from "$work/src" >/dev/null
"$bin/hubsim" seed --endpoint "$ep" --token alice-token bucket alice/ovb --from "$work/src" >/dev/null
bucket_before=$(api alice/ovb tree)

# The layer as the user left it before mounting.
layer=$work/mnt/repo
mkdir -p "$layer/sub" "$layer/trap" "$work/outside"
echo local-readme > "$layer/README.md"
echo mine > "$layer/notes.txt"
echo extra > "$layer/sub/extra.txt"
echo inside > "$layer/trap/inside.txt"
ln -s /etc "$layer/etc-link"
ln -s "$work/outside" "$layer/out-link"
mkfifo "$layer/fifo"

# Holds the layer open from before the mount; once told, swaps trap/ for a symlink out of it.
python3 -c "
import os, sys, time
fd = os.open('$layer', os.O_PATH | os.O_DIRECTORY)
open('$work/holder-ready', 'w').close()
while not os.path.exists('$work/plant-now'): time.sleep(0.05)
os.rename('trap', 'trap.moved', src_dir_fd=fd, dst_dir_fd=fd)
os.symlink('$work/outside', 'trap', dir_fd=fd)
open('$work/planted', 'w').close()
" &
pids+=($!)
for _ in $(seq 100); do [ -e "$work/holder-ready" ] && break; sleep 0.05; done

mounted repo --hf-token alice-token --overlay repo alice/ov
m=$layer
check "the mount line says overlay" grep -q "overlay: local files read-write, the remote read-only" "$work/mount-repo.log"
check "local wins on a name clash" test "$(cat "$m/README.md")" = local-readme
check "local-only and remote-only files both read" bash -c "test \"\$(cat '$m/notes.txt')\" = mine && test \"\$(cat '$m/sub/a.txt')\" = remote-a && cmp '$m/models/weights.bin' '$work/src/models/weights.bin'"
check "a directory merges both sides" bash -c "test \"\$(ls '$m/sub' | tr '\n' ' ')\" = 'a.txt extra.txt '"
check "symlinks and special files of the layer are hidden" bash -c "! ls -a '$m' | grep -qE 'etc-link|out-link|fifo'"
check "writing, truncating, deleting or renaming a remote-only file is EACCES; chmod is EPERM" python3 -c "
import errno, os
m = '$m'
def refused(code, f, *a):
    try:
        f(*a)
    except OSError as e:
        assert e.errno == code, (f, a, e)
    else:
        raise SystemExit(f'{f.__name__}{a} worked')
refused(errno.EACCES, open, m + '/sub/a.txt', 'a')
refused(errno.EACCES, open, m + '/sub/a.txt', 'w')
refused(errno.EACCES, os.truncate, m + '/models/config.json', 0)
refused(errno.EACCES, os.unlink, m + '/models/config.json')
refused(errno.EACCES, os.rename, m + '/models/config.json', m + '/c.json')
refused(errno.EACCES, os.rename, m + '/models', m + '/models2')
refused(errno.EACCES, os.rmdir, m + '/models')
refused(errno.EPERM, os.chmod, m + '/sub/a.txt', 0o600)
refused(errno.EACCES, os.rename, m + '/notes.txt', m + '/sub/a.txt')
assert open(m + '/sub/a.txt').read() == 'remote-a\n'
"
check "symlinks, hard links and FIFOs are not created (EPERM)" bash -c "! ln -s x '$m/sl' 2>/dev/null && ! ln '$m/notes.txt' '$m/hl' 2>/dev/null && ! mkfifo '$m/ff' 2>/dev/null && ! ls -a '$m' | grep -qE '^(sl|hl|ff)$'"
check "a file is created, written, appended, truncated, renamed and deleted in the layer" bash -c "
  set -e; echo one > '$m/new.txt'; echo two >> '$m/new.txt'; test \"\$(cat '$m/new.txt')\" = \$'one\ntwo'
  truncate -s 3 '$m/new.txt'; test \"\$(cat '$m/new.txt')\" = one
  mv '$m/new.txt' '$m/renamed.txt'; test ! -e '$m/new.txt'; test \"\$(cat '$m/renamed.txt')\" = one
  echo gone > '$m/gone.txt'; rm '$m/gone.txt'; test ! -e '$m/gone.txt'"
check "a new file in a remote-only directory creates that directory in the layer" bash -c "echo tuned > '$m/models/tuned.json' && test \"\$(cat '$m/models/tuned.json')\" = tuned && test \"\$(ls '$m/models' | tr '\n' ' ')\" = 'config.json tuned.json weights.bin '"
check "mkdir -p, chmod and utimes work on layer entries" bash -c "
  set -e; mkdir -p '$m/runs/a/b'; echo deep > '$m/runs/a/b/log.txt'; chmod 600 '$m/runs/a/b/log.txt'
  test \"\$(stat -c %a '$m/runs/a/b/log.txt')\" = 600; touch -d 2020-01-02 '$m/runs/a/b/log.txt'
  test \"\$(date -r '$m/runs/a/b/log.txt' +%F)\" = 2020-01-02; rmdir '$m/runs/a/b' 2>/dev/null && exit 1; rm '$m/runs/a/b/log.txt'; rmdir '$m/runs/a/b'"
check "copying a remote file under a new name diverges from it" bash -c "cp '$m/sub/a.txt' '$m/sub/a-mine.txt' && chmod 644 '$m/sub/a-mine.txt' && echo edited >> '$m/sub/a-mine.txt' && test \"\$(cat '$m/sub/a-mine.txt')\" = \$'remote-a\nedited' && test \"\$(cat '$m/sub/a.txt')\" = remote-a"
check "removing the local file that hid a remote one shows the remote one at once" bash -c "rm '$m/README.md' && grep -qx remote-readme '$m/README.md'"
check "hostile but valid names stay inside the layer" python3 -c "
import errno, os
m = '$m'
names = ['-rf', ' lead and trail ', 'new\nline', 'quote\"s and \\'s', 'ünïcødé-日本', '%2e%2e', '..hidden', 'x' * 255]
for n in names:
    with open(os.path.join(m, 'sub', n), 'w') as f: f.write(n)
for n in names:
    assert open(os.path.join(m, 'sub', n)).read() == n, n
try:
    open(os.path.join(m, 'x' * 256), 'w'); raise SystemExit('a 256-byte name was created')
except OSError as e:
    assert e.errno == errno.ENAMETOOLONG, e
with open(m + '/sub/../escape-attempt.txt', 'w') as f: f.write('in')
assert os.path.exists(m + '/escape-attempt.txt')
"
check "a big file written through the mount reads back" bash -c "head -c 20000000 /dev/urandom > '$work/big.bin' && cp '$work/big.bin' '$m/big.bin' && cmp '$work/big.bin' '$m/big.bin'"
check "git init, add and commit inside the overlay" bash -c "cd '$m/runs' && git init -q proj && cd proj && echo x > f && git add f && git -c user.email=a@b -c user.name=a commit -qm one && git log --oneline | grep -q one"
check "a file removed or replaced while open stays usable through its descriptor" python3 -c "
import os, tempfile
m = '$m'
f = open(m + '/scratch.bin', 'w+b'); f.write(b'abc'); f.flush()
os.unlink(m + '/scratch.bin'); assert not os.path.exists(m + '/scratch.bin')
f.write(b'def'); f.flush(); f.seek(0); assert f.read() == b'abcdef'; f.close()
with open(m + '/doc.txt', 'w') as g: g.write('old')
old = open(m + '/doc.txt')
with open(m + '/doc.txt.tmp', 'w') as g: g.write('new')
os.rename(m + '/doc.txt.tmp', m + '/doc.txt')
assert old.read() == 'old' and open(m + '/doc.txt').read() == 'new'; old.close()
with tempfile.TemporaryFile(dir=m) as t:
    t.write(b'x' * 100000); t.seek(0); assert len(t.read()) == 100000
assert '.hf-mount-deleted' not in os.listdir(m)
"
check "rsync, sqlite3 and filelock work in the layer" bash -c "
  set -e; rsync -a '$work/src/' '$m/mirror/' && diff -r '$work/src' '$m/mirror'
  sqlite3 '$m/runs/db.sqlite' 'create table t(x); insert into t values (1),(2);' && test \"\$(sqlite3 '$m/runs/db.sqlite' 'select sum(x) from t')\" = 3
  python3 -c 'import filelock; l = filelock.FileLock(\"$m/runs/x.lock\"); l.acquire(timeout=5); l.release()'"
check "fsx: 10,000 random reads, writes, truncates and mmaps of a layer file" bash -c "cd '$m' && fsx -N 10000 -S 20261202 -P '$work' '$m/fsx.data' | tail -2"

# A symlink swapped into the layer while mounted (by a process that held it open) is never
# followed: every access through the old directory fails and nothing reaches outside.
touch "$work/plant-now"
for _ in $(seq 100); do [ -e "$work/planted" ] && break; sleep 0.05; done
check "a symlink planted in the layer while mounted is never followed" bash -c "
  ! cat '$m/trap/inside.txt' 2>/dev/null; ! echo evil > '$m/trap/evil.txt' 2>/dev/null; ! mkdir '$m/trap/d' 2>/dev/null
  ! mv '$m/notes.txt' '$m/trap/notes.txt' 2>/dev/null; test -z \"\$(ls -A '$work/outside')\"; test \"\$(cat '$m/notes.txt')\" = mine"
check "such an access fails as EACCES" python3 -c "
import errno
try:
    open('$m/trap/evil2.txt', 'w'); raise SystemExit('created')
except OSError as e:
    assert e.errno == errno.EACCES, e"

check "the remote was never written" bash -c "curl -sf '$ep/api/models/alice/ov/tree/main?recursive=true' | python3 -c 'import json,sys; print(sorted(e[\"path\"] for e in json.load(sys.stdin) if e[\"type\"]==\"file\"))' | grep -qx \"\\['README.md', 'models/config.json', 'models/weights.bin', 'sub/a.txt'\\]\""
fusermount3 -u "$m"; sleep 0.5
check "after unmount the files are plain files of the directory" bash -c "test \"\$(cat '$layer/notes.txt')\" = mine && test \"\$(cat '$layer/models/tuned.json')\" = tuned && test \"\$(cat '$layer/renamed.txt')\" = one && test ! -e '$layer/README.md' && cmp '$layer/big.bin' '$work/big.bin'"
check "files removed while open are gone from the layer once closed" bash -c "test -z \"\$(ls -A '$layer/.hf-mount-deleted' 2>/dev/null)\" && test \"\$(cat '$layer/doc.txt')\" = new"
check "the hostile names are files of the layer, nothing outside it" bash -c "test -f '$layer/sub/-rf' && test -f '$layer/sub/%2e%2e' && test -f '$layer/escape-attempt.txt' && test -z \"\$(ls -A '$work/outside')\""
mounted repo --hf-token alice-token --overlay repo alice/ov
check "a remount shows the local files again, with their modes" bash -c "test \"\$(cat '$m/models/tuned.json')\" = tuned && test \"\$(cat '$m/sub/a-mine.txt')\" = \$'remote-a\nedited' && test \"\$(stat -c %a '$m/sub/a-mine.txt')\" = 644 && cd '$m/runs/proj' && git log --oneline | grep -q one"
fusermount3 -u "$m"

# ---- a bucket -------------------------------------------------------------------------------
mounted bucket --hf-token alice-token --overlay --metadata-ttl-ms 0 bucket alice/ovb
b=$work/mnt/bucket
check "bucket: files are created and changed in the layer" bash -c "echo local > '$b/sub/local.txt' && cp '$b/sub/a.txt' '$b/a-copy.txt' && echo more >> '$b/a-copy.txt' && test \"\$(cat '$b/a-copy.txt')\" = \$'remote-a\nmore'"
check "bucket: remote-only files are refused" bash -c "! rm '$b/models/config.json' 2>/dev/null && ! echo x >> '$b/sub/a.txt' 2>/dev/null"
check "bucket: listings re-fetched after their TTL keep the layer's entries" bash -c "sleep 0.2; test \"\$(ls '$b/sub' | tr '\n' ' ')\" = 'a.txt local.txt '"
check "bucket: nothing reached the bucket" bash -c "sleep 1; test \"\$(api alice/ovb tree)\" = '$bucket_before'"
fusermount3 -u "$b"
check "bucket: the changes are in the directory" bash -c "test \"\$(cat '$b/sub/local.txt')\" = local"

# ---- NFS ------------------------------------------------------------------------------------
nl=$work/mnt/nfs
mkdir -p "$nl/sub" && echo nfs-local > "$nl/sub/n.txt"
"$bin/hf-mount-nfs" --hub-endpoint "$ep" --hf-token alice-token --cache-dir "$work/cache-nfs" --no-kernel-mount --overlay bucket alice/ovb "$nl" >"$work/nfs.out" 2>"$work/nfs.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^nfs=' "$work/nfs.out" && break; sleep 0.1; done
port=$(sed -n 's/^nfs=127.0.0.1:\([0-9]*\) export=\/$/\1/p' "$work/nfs.out")
url() { echo "nfs://127.0.0.1/$1?nfsport=$port&mountport=$port&version=3"; }
check "nfs: the listing merges both sides" bash -c "nfs-ls '$(url sub)' | tee /dev/stderr | grep -q ' a.txt$' && nfs-ls '$(url sub)' | grep -q ' n.txt$'"
check "nfs: a local file and a remote one read" bash -c "test \"\$(nfs-cat '$(url sub/n.txt)')\" = nfs-local && test \"\$(nfs-cat '$(url sub/a.txt)')\" = remote-a"
check "nfs: nfs-cp writes into the layer" bash -c "nfs-cp '$work/big.bin' '$(url models/copied.bin)' && cmp '$nl/models/copied.bin' '$work/big.bin'"
check "nfs: overwriting a remote-only file fails" bash -c "! nfs-cp '$work/big.bin' '$(url sub/a.txt)' 2>/dev/null; test \"\$(nfs-cat '$(url sub/a.txt)')\" = remote-a"
check "nfs: nothing reached the bucket" bash -c "test \"\$(api alice/ovb tree)\" = '$bucket_before'"

check "--overlay --read-only is a clear error" bash -c "! '$bin/hf-mount-fuse' --hub-endpoint '$ep' --overlay --read-only bucket alice/ovb '$work/mnt/ro' 2>'$work/ro.err'; cat '$work/ro.err'; grep -q 'contradict' '$work/ro.err'"

echo "# overlay: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
