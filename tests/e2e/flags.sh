#!/usr/bin/env bash
# End to end for the smaller flags and conventions, through real FUSE mounts against hubsim:
# the OS metadata filter (and --no-filter-os-files), --token-file rotation, --direct-io,
# --poll-listing-concurrency, RUST_LOG_FORMAT=json, the raised open-files limit, the huge-page
# re-exec (and a user's GLIBC_TUNABLES kept), --version, and
# the mount helper (`mount -t hf-mount`, `mount.hf-mount -f`, the fuse `hf-mount#SPEC` form).
# Usage: tests/e2e/flags.sh [TARGET_DIR]   (binaries from TARGET_DIR/release)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target}/release
source "$here/lib.sh"
api() { python3 "$here/bucket_api.py" "$ep" "$@"; }
export HOME=$work/home
mkdir -p "$HOME"

start_hubsim
mkdir -p "$work/src/sub" && echo "hello flags" > "$work/src/hello.txt" && echo junk > "$work/src/.DS_Store" && echo fork > "$work/src/sub/._hello.txt"
"$bin/hubsim" seed --endpoint "$ep" --token alice-token bucket alice/fb --from "$work/src" >/dev/null
"$bin/hubsim" seed --endpoint "$ep" --token alice-token bucket alice/private --from "$work/src" --private >/dev/null

# ---- the OS metadata filter ------------------------------------------------------------------
mounted junk --hf-token alice-token bucket alice/fb
m=$work/mnt/junk
check "listings hide OS metadata files the bucket holds" bash -c "ls -a '$m' '$m/sub' | tee /dev/stderr | grep -q hello.txt && ! ls -a '$m' '$m/sub' | grep -qE 'DS_Store|\._hello'"
check "creating .DS_Store, ._x, Thumbs.db and .Trashes is EACCES" python3 -c "
import errno, os
for make in (lambda p: open(p, 'w'), os.mkdir):
    for name in ('.DS_Store', '._hello.txt', 'Thumbs.db', 'Desktop.ini', '.Trashes', '.Trash-1000'):
        try:
            make(os.path.join('$m', name)); raise SystemExit(f'{name} was created')
        except OSError as e:
            assert e.errno == errno.EACCES, (name, e)
"
check "renaming a file to .DS_Store is EACCES and keeps the file" bash -c "echo x > '$m/plain.txt' && ! mv '$m/plain.txt' '$m/.DS_Store' 2>/dev/null && test -e '$m/plain.txt'"
check "cp -r of a Finder-made folder copies the real files, refuses only the metadata" bash -c "mkdir -p '$work/finder/photos' && echo p > '$work/finder/photos/a.jpg' && echo m > '$work/finder/photos/.DS_Store' && echo r > '$work/finder/photos/._a.jpg'; cp -r '$work/finder/photos' '$m/' 2>'$work/cp.err'; cat '$work/cp.err'; test \"\$(cat '$m/photos/a.jpg')\" = p && test \$(grep -c 'Permission denied' '$work/cp.err') -eq 2"
check "nothing of it reached the bucket" bash -c "sleep 1; t=\$(python3 '$here/bucket_api.py' '$ep' alice/fb tree); echo \"\$t\" | grep -q '^photos/a.jpg ' && ! echo \"\$t\" | grep -qE 'photos/(\.DS_Store|\._a)'"
mounted keep --hf-token alice-token --no-filter-os-files bucket alice/fb
check "--no-filter-os-files shows them" bash -c "test \"\$(cat '$work/mnt/keep/.DS_Store')\" = junk && test -e '$work/mnt/keep/sub/._hello.txt'"
check "and creates them" bash -c "echo t > '$work/mnt/keep/Thumbs.db' && python3 '$here/bucket_api.py' '$ep' alice/fb cat Thumbs.db | grep -q t"

# ---- --token-file ------------------------------------------------------------------------------
echo alice-token > "$work/token"
mounted tok --token-file "$work/token" --metadata-ttl-ms 0 --poll-interval-secs 0 bucket alice/private
t=$work/mnt/tok
check "a private bucket mounts with the token file's token" grep -q "hello flags" "$t/hello.txt"
check "--token-file with --hf-token is a usage error" bash -c "! '$bin/hf-mount-fuse' --token-file '$work/token' --hf-token x bucket alice/private '$work/mnt/tok' 2>&1 | grep -q 'cannot be used with'; test \${PIPESTATUS[0]} -ne 0"
check "an empty token file is refused at mount time" bash -c "mkdir -p '$work/mnt/empty'; : > '$work/empty-token'; ! '$bin/hf-mount-fuse' --hub-endpoint '$ep' --token-file '$work/empty-token' bucket alice/private '$work/mnt/empty' 2>'$work/empty.err'; grep -q 'no token' '$work/empty.err'"
echo expired-token > "$work/token.new" && mv "$work/token.new" "$work/token"
check "a token the Hub refuses turns into EACCES (no remount)" python3 -c "
import errno, os
try:
    os.listdir('$t/sub'); raise SystemExit('listed with a refused token')
except OSError as e:
    assert e.errno == errno.EACCES, e"
check "with a log line saying so" eventually grep -qi "401\|denied\|token" "$work/mount-tok.log"
echo alice-token > "$work/token.new" && mv "$work/token.new" "$work/token"
check "once the file holds a valid token again, the mount works again" eventually bash -c "ls '$t/sub' >/dev/null && echo renewed > '$t/renewed.txt' && python3 '$here/bucket_api.py' '$ep' alice/private cat renewed.txt | grep -q renewed"

# ---- --direct-io -------------------------------------------------------------------------------
head -c 5000000 /dev/urandom > "$work/big.bin"
cp "$work/big.bin" "$work/mnt/junk/big.bin"
d=$work/mnt/dio
mkdir -p "$d"
"$bin/hf-mount" start --fuse --hub-endpoint "$ep" --hf-token alice-token --cache-dir "$work/c-dio" --direct-io bucket alice/fb "$d" 2>"$work/dio.err" || cat "$work/dio.err"
read_bytes() { "$bin/hf-mount" status --json | python3 -c "import json,sys; print([e for e in json.load(sys.stdin) if e['mountpoint'] == '$d'][0]['figures']['bytes_read'])"; }
export -f read_bytes; export bin d
check "--direct-io reads match" cmp "$work/big.bin" "$d/big.bin"
check "every re-read reaches the mount (no page cache): 3 more reads, 3 more file sizes" bash -c "before=\$(read_bytes); for i in 1 2 3; do cat '$d/big.bin' >/dev/null; done; after=\$(read_bytes); echo \$before \$after; test \$((after - before)) -ge 15000000"
check "mmap still works under --direct-io" python3 -c "
import mmap
with open('$d/big.bin', 'rb') as f, open('$work/big.bin', 'rb') as g:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    assert m[1000:2000] == g.read()[1000:2000]"

# ---- logging, limits, version ------------------------------------------------------------------
check "--version names the version" bash -c "'$bin/hf-mount-fuse' --version | grep -qE '^hf-mount-fuse [0-9]+\.[0-9]+' && '$bin/hf-mount' --version | grep -qE '^hf-mount [0-9]' && '$bin/hf-mount-nfs' --version | grep -qE '^hf-mount-nfs [0-9]'"
check "RUST_LOG_FORMAT=json logs one JSON object per line" bash -c "mkdir -p '$work/mnt/js'; RUST_LOG_FORMAT=json RUST_LOG=info '$bin/hf-mount-fuse' --hub-endpoint '$ep' bucket alice/missing '$work/mnt/js' 2>'$work/json.log'; grep '^{' '$work/json.log' | head -3 | python3 -c '
import json, sys
lines = [json.loads(l) for l in sys.stdin]
assert lines and all(\"level\" in l and \"fields\" in l for l in lines), lines'"
pid=$(pgrep -f "hf-mount-fuse.*$work/mnt/dio\$")
check "the open-files limit is raised to the hard limit" bash -c "test \"\$(awk '/Max open files/ {print \$4}' /proc/$pid/limits)\" = \"\$(awk '/Max open files/ {print \$5}' /proc/$pid/limits)\""
check "the mount runs with huge pages for its heap (re-executed once: same pid, same program name)" bash -c "tr '\\0' '\\n' < /proc/$pid/environ | grep -qx 'GLIBC_TUNABLES=glibc.malloc.hugetlb=1' && test \"\$(tr '\\0' '\\n' < /proc/$pid/cmdline | head -1 | sed 's|.*/||')\" = hf-mount-fuse"
mkdir -p "$work/mnt/small-pages"
GLIBC_TUNABLES=glibc.malloc.hugetlb=0 "$bin/hf-mount-fuse" --hub-endpoint "$ep" --hf-token alice-token bucket alice/fb "$work/mnt/small-pages" 2>"$work/small-pages.log" &
pids+=($!); sp=$!
check "a user's own glibc.malloc.hugetlb is kept" bash -c "for _ in \$(seq 100); do mountpoint -q '$work/mnt/small-pages' && break; sleep 0.05; done; tr '\\0' '\\n' < /proc/$sp/environ | grep -qx 'GLIBC_TUNABLES=glibc.malloc.hugetlb=0' && test \"\$(cat '$work/mnt/small-pages/hello.txt')\" = 'hello flags'"
fusermount3 -u "$work/mnt/small-pages"
"$bin/hf-mount" stop "$d" >/dev/null 2>&1
check "--poll-listing-concurrency is bounded" bash -c "! '$bin/hf-mount-fuse' --poll-listing-concurrency 0 bucket a/b /tmp 2>/dev/null"

# ---- the mount helper --------------------------------------------------------------------------
mkdir -p "$work/mnt/fstab" "$work/mnt/fusefstab" "$work/helper"
abs_bin=$(cd "$bin" && pwd)
ln -s "$abs_bin/hf-mount" "$work/helper/mount.hf-mount"
check "mount.hf-mount -f says what it would run" bash -c "'$work/helper/mount.hf-mount' bucket:alice/fb '$work/mnt/fstab' -f -o defaults,_netdev,ro,hub_endpoint=$ep 2>&1 | grep -q -- '--fuse --read-only --hub-endpoint $ep bucket alice/fb'"
if [ "$(id -u)" = 0 ] && [ ! -e /sbin/mount.hf-mount ]; then
  ln -s "$abs_bin/hf-mount" /sbin/mount.hf-mount
  check "mount -t hf-mount (an fstab line) mounts and returns once live" bash -c "mount -t hf-mount bucket:alice/fb '$work/mnt/fstab' -o ro,_netdev,hub_endpoint=$ep,token_file=$work/token,cache_dir=$work/c-fstab && grep -q 'hello flags' '$work/mnt/fstab/hello.txt' && ! touch '$work/mnt/fstab/x' 2>/dev/null"
  # mount(8) runs its helpers without HOME: the daemon's state is in the user's home from
  # the password database, where hf-mount looks too when HOME is unset.
  check "and hf-mount stop ends it" bash -c "env -u HOME '$bin/hf-mount' stop '$work/mnt/fstab' && ! mountpoint -q '$work/mnt/fstab'"
  rm -f /sbin/mount.hf-mount
fi
check "the fuse form: hf-mount bucket:NS/NAME DIR -o OPTIONS (what mount.fuse3 runs)" bash -c "PATH='$bin':\$PATH; hf-mount bucket:alice/fb '$work/mnt/fusefstab' -o rw,nosuid,nodev,hub_endpoint=$ep,token_file=$work/token,cache_dir=$work/c-fuse && grep -q 'hello flags' '$work/mnt/fusefstab/hello.txt' && hf-mount stop '$work/mnt/fusefstab'"
check "a bad option is refused before anything starts" bash -c "! '$work/helper/mount.hf-mount' bucket:alice/fb '$work/mnt/fstab' -o 'no_such_option=1' 2>'$work/opt.err'; grep -q 'no-such-option' '$work/opt.err' && ! mountpoint -q '$work/mnt/fstab'"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
