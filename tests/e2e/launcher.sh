#!/usr/bin/env bash
# End to end for the launcher: `hf-mount start | stop | status` running the real backends as
# daemons against hubsim (FUSE mounts, and NFS with --no-kernel-mount since this kernel has no
# NFS client), with its state in a HOME of its own. Bucket contents are cross-checked through
# the Python client.
# Usage: tests/e2e/launcher.sh [TARGET_DIR]   (binaries from TARGET_DIR/release)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target}/release
source "$here/lib.sh"
api() { python3 "$here/bucket_api.py" "$ep" "$@"; }
export HOME=$work/home
mkdir -p "$HOME"
state=$HOME/.hf-mount
hfm() { "$bin/hf-mount" "$@"; }
# A process that exited may stay a zombie until an init reaps it.
gone() { ! test -d /proc/$1 || grep -q '^State:.Z' /proc/$1/status; }
export -f gone
key() { local p=${1#/}; p=${p//%/%25}; echo "${p//\//%2F}"; }
pid_of() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pid'])" "$state/pids/$(key "$1").pid"; }
# Whatever a failing check leaves running is stopped with the work dir.
stop_all() { for f in "$state"/pids/*.pid; do [ -e "$f" ] && kill "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pid'])" "$f")" 2>/dev/null; done; sleep 0.5; cleanup; }
trap stop_all EXIT

start_hubsim
mkdir -p "$work/src" && echo "hello daemon" > "$work/src/hello.txt"
"$bin/hubsim" seed --endpoint "$ep" --token alice-token bucket alice/lb --from "$work/src" >/dev/null
mnt=$work/mnt/d
mkdir -p "$mnt" "$work/mnt/n" "$work/mnt/k" "$work/mnt/bad"
common=(--hub-endpoint "$ep" --hf-token alice-token)

# ---- start -----------------------------------------------------------------------------------
check "start --fuse returns 0 once the mount is live" bash -c "'$bin/hf-mount' start --fuse ${common[*]} --cache-dir '$work/c1' --advanced-writes --flush-debounce-ms 60000 --flush-max-batch-window-ms 60000 bucket alice/lb '$mnt' && mountpoint -q '$mnt' && test \"\$(cat '$mnt/hello.txt')\" = 'hello daemon'"
check "it wrote a pid file naming a live hf-mount-fuse" bash -c "pid=\$(python3 -c \"import json; print(json.load(open('$state/pids/$(key "$mnt").pid'))['pid'])\") && grep -q hf-mount-fuse /proc/\$pid/cmdline"
pid=$(pid_of "$mnt")
check "the daemon leads a session of its own (detached)" bash -c "test \"\$(ps -o sid= -p $pid | tr -d ' ')\" = $pid"
check "its output goes to its log" grep -q "mounted bucket alice/lb" "$state/logs/$(key "$mnt").log"
check "a second start on the same mount point is refused" bash -c "! '$bin/hf-mount' start --fuse ${common[*]} bucket alice/lb '$mnt' 2>'$work/second.err'; cat '$work/second.err'; grep -q 'already serves' '$work/second.err' && test \$(pgrep -c -f 'hf-mount-fuse.*$mnt\$') -eq 1"
check "a bad flag is the backend's own usage error, before anything starts" bash -c "'$bin/hf-mount' start --fuse --no-such-flag bucket alice/lb '$work/mnt/bad' 2>'$work/flag.err'; test \$? -eq 2 && grep -q -- '--no-such-flag' '$work/flag.err' && test ! -e '$state/pids/$(key "$work/mnt/bad").pid'"
check "a bucket that does not exist: non-zero, the backend's error and the log path" bash -c "! '$bin/hf-mount' start --fuse ${common[*]} bucket alice/missing '$work/mnt/bad' 2>'$work/missing.err'; cat '$work/missing.err'; grep -q 'alice/missing' '$work/missing.err' && grep -q 'log: .*\.log' '$work/missing.err' && test ! -e '$state/pids/$(key "$work/mnt/bad").pid'"
check "the NFS backend (default) without an NFS client fails clearly" bash -c "! '$bin/hf-mount' start ${common[*]} bucket alice/lb '$work/mnt/bad' 2>'$work/nfs.err'; cat '$work/nfs.err'; grep -qi 'nfs' '$work/nfs.err' && test ! -e '$state/pids/$(key "$work/mnt/bad").pid'"

# ---- status ----------------------------------------------------------------------------------
head -c 3000000 /dev/urandom > "$work/blob.bin"
cp "$work/blob.bin" "$mnt/blob.bin"
cat "$mnt/hello.txt" >/dev/null
check "status lists the mount with its source, backend and figures" bash -c "'$bin/hf-mount' status | tee /dev/stderr | grep -q \"^$mnt  bucket alice/lb  (fuse, pid $pid)\" && '$bin/hf-mount' status | grep -q 'uploads: .* 1 pending'"
check "status --json: bytes written, pending uploads, Hub requests from the mount itself" bash -c "test \"\$('$bin/hf-mount' status --json | python3 -c \"
import json, sys
e = [e for e in json.load(sys.stdin) if e['mountpoint'] == '$mnt'][0]
f = e['figures']
print(f['bytes_written'] >= 3000000 and f['uploads_pending'] == 1 and f['hub_requests'] > 0 and f['backend'] == 'fuse' and f['writable'])
\")\" = True"
check "the control socket is the mounting user's only (0600 in a 0700 directory)" bash -c "test \$(stat -c %a '$state/run/$(key "$mnt").sock') = 600 && test \$(stat -c %a '$state/run') = 700"
check "another user cannot read the figures" bash -c "! setpriv --reuid 65534 --regid 65534 --clear-groups python3 -c \"
import socket; s = socket.socket(socket.AF_UNIX); s.connect('$state/run/$(key "$mnt").sock')\" 2>/dev/null"

# ---- NFS daemon ------------------------------------------------------------------------------
check "start of the NFS backend serving only (--no-kernel-mount)" "$bin/hf-mount" start "${common[@]}" --cache-dir "$work/c2" --no-kernel-mount --nfs-insecure-port bucket alice/lb "$work/mnt/n"
port=$(sed -n 's/^nfs=127.0.0.1:\([0-9]*\) export=\/$/\1/p' "$state/logs/$(key "$work/mnt/n").log" | tail -1)
check "it serves at once" bash -c "nfs-cat 'nfs://127.0.0.1//hello.txt?nfsport=$port&mountport=$port&version=3' | grep -q 'hello daemon'"
check "status shows both daemons" bash -c "'$bin/hf-mount' status --json | python3 -c \"
import json, sys
got = sorted((e['backend'], e['mountpoint']) for e in json.load(sys.stdin))
assert got == [('fuse', '$mnt'), ('nfs', '$work/mnt/n')], got\""
check "stop ends the NFS daemon" bash -c "'$bin/hf-mount' stop '$work/mnt/n' && ! pgrep -f 'hf-mount-nfs.*$work/mnt/n\$' && test ! -e '$state/pids/$(key "$work/mnt/n").pid'"

# ---- stop --------------------------------------------------------------------------------------
check "the file is not in the bucket before stop (long debounce)" bash -c "! python3 '$here/bucket_api.py' '$ep' alice/lb tree | grep -q '^blob.bin '"
check "stop unmounts, saves what is unsaved and ends the daemon" bash -c "'$bin/hf-mount' stop '$mnt' && ! mountpoint -q '$mnt' && gone $pid && test ! -e '$state/pids/$(key "$mnt").pid' && test ! -e '$state/run/$(key "$mnt").sock'"
check "the unsaved file reached the bucket" bash -c "python3 '$here/bucket_api.py' '$ep' alice/lb cat blob.bin | cmp - '$work/blob.bin'"
check "stop of a mount point no daemon serves fails clearly" bash -c "! '$bin/hf-mount' stop '$mnt' 2>'$work/nostop.err'; grep -q 'no daemon serves' '$work/nostop.err'"

# ---- a daemon that died ------------------------------------------------------------------------
"$bin/hf-mount" start --fuse "${common[@]}" --cache-dir "$work/c3" bucket alice/lb "$work/mnt/k" 2>/dev/null
kpid=$(pid_of "$work/mnt/k")
kill -9 "$kpid"; sleep 0.3
check "status leaves out a dead daemon and removes its pid file" bash -c "! '$bin/hf-mount' status | grep -q '$work/mnt/k' && test ! -e '$state/pids/$(key "$work/mnt/k").pid'"
"$bin/hf-mount" start --fuse "${common[@]}" --cache-dir "$work/c3" bucket alice/lb "$work/mnt/k" 2>/dev/null || true
check "a start over the dead daemon's mount is refused (its mount is still there)" bash -c "! pgrep -f 'hf-mount-fuse.*$work/mnt/k\$'"
printf '%s\n' "{\"pid\": $kpid, \"mountpoint\": \"$work/mnt/k\", \"source\": \"bucket alice/lb\", \"backend\": \"fuse\", \"started_unix\": 0, \"drain_timeout_secs\": 5, \"proc_start\": null}" > "$state/pids/$(key "$work/mnt/k").pid"
check "stop of a dead daemon removes its pid file and detaches its mount" bash -c "'$bin/hf-mount' stop '$work/mnt/k' && test ! -e '$state/pids/$(key "$work/mnt/k").pid' && ! mountpoint -q '$work/mnt/k'"
check "and the mount point takes a new daemon" bash -c "'$bin/hf-mount' start --fuse ${common[*]} --cache-dir '$work/c3' bucket alice/lb '$work/mnt/k' && cat '$work/mnt/k/hello.txt' && '$bin/hf-mount' stop '$work/mnt/k'"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
