#!/usr/bin/env bash
# End to end over NFS: hubsim on loopback, the real hf-mount-nfs binary serving with
# --no-kernel-mount (this kernel has no NFS client), and clients nobody here wrote: libnfs-utils
# (nfs-ls, nfs-cat, nfs-cp) and nfs-probe (the nfs3_client crate). Bucket contents are
# cross-checked through the Python client.
# Usage: tests/e2e/nfs_mount.sh [TARGET_DIR]   (binaries from TARGET_DIR/release)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target}/release
big_mib=${E2E_BIG_MIB:-64}
write_mib=${E2E_NFS_WRITE_MIB:-300}
source "$here/lib.sh"
api() { python3 "$here/bucket_api.py" "$ep" "$@"; }
probe() { "$bin/nfs-probe" "$@"; }
export -f api probe listing
export bin here

served() { # served NAME ARGS... -> serves at $port (also port_NAME, pid_NAME)
  local name=$1; shift
  mkdir -p "$work/mnt/$name"
  "$bin/hf-mount-nfs" --hub-endpoint "$ep" --cache-dir "$work/cache-$name" --no-kernel-mount "$@" "$work/mnt/$name" \
    >"$work/nfs-$name.out" 2>"$work/nfs-$name.log" &
  local pid=$!
  pids+=($pid)
  for _ in $(seq 100); do grep -q '^nfs=' "$work/nfs-$name.out" && break; sleep 0.1; done
  port=$(sed -n 's/^nfs=127.0.0.1:\([0-9]*\) export=\/$/\1/p' "$work/nfs-$name.out")
  [ -n "$port" ] || { cat "$work/nfs-$name.log"; return 1; }
  printf -v "port_$name" %s "$port"
  printf -v "pid_$name" %s "$pid"
}
url() { echo "nfs://127.0.0.1/$2?nfsport=$1&mountport=$1&version=3"; }

echo "# seeding hubsim (big file ${big_mib} MiB)"
start_hubsim
export ep
python3 "$here/make_tree.py" "$work/tree" "$big_mib" 1
"$bin/hubsim" seed --endpoint "$ep" --token alice-token repo alice/e2e --from "$work/tree" >/dev/null
mkdir -p "$work/bsrc/docs" && echo "hello bucket" > "$work/bsrc/hello.txt" && head -c 3000000 /dev/urandom > "$work/bsrc/docs/blob.bin"
"$bin/hubsim" seed --endpoint "$ep" --token alice-token bucket alice/nb --from "$work/bsrc" >/dev/null
export HF_TOKEN=alice-token

# ---- a repo, read-only ------------------------------------------------------------------
served repo repo alice/e2e --poll-interval-secs 0
check "serving prints the address and the runtime" grep -q "serving alice/e2e@.* on nfs://127.0.0.1:$port/ .*(runtime ${HF_MOUNT_RUNTIME^})" "$work/nfs-repo.log"
check "the whole tree lists by READDIRPLUS pages (nfs3_client)" bash -c "'$bin/nfs-probe' tree $port 8192 2>'$work/tree.err' | LC_ALL=C sort | diff <(listing '$work/tree') -"
check "the 2,500-entry directory took many READDIRPLUS pages" bash -c "cat '$work/tree.err'; calls=\$(sed -n 's/.* \([0-9]*\) READDIRPLUS calls.*/\1/p' '$work/tree.err'); test \"\$calls\" -gt 40"
check "sha256 of every file read over NFS matches" bash -c "'$bin/nfs-probe' sha256 $port > '$work/sums' && test \$(wc -l < '$work/sums') -gt 2800 && cd '$work/tree' && sha256sum --quiet -c '$work/sums'"
check "random READs of the big file match" probe reads "$port" weights/model.safetensors "$work/tree/weights/model.safetensors" 200
check "nfs-ls lists the root" bash -c "nfs-ls '$(url "$port" "")' | grep -q ' README.md$'"
check "nfs-ls -R lists every file" bash -c "test \$(nfs-ls -R '$(url "$port" "")' | grep -c '^-') -eq \$(find '$work/tree' -type f | wc -l)"
check "nfs-cat of the big file matches" bash -c "nfs-cat '$(url "$port" weights/model.safetensors)' | cmp - '$work/tree/weights/model.safetensors'"
check "nfs-cat of a file at the root of the export" bash -c "nfs-cat '$(url "$port" /README.md)' | cmp - '$work/tree/README.md'"
# libnfs takes names raw in its URLs (no %-decoding; `?` starts the options).
check "nfs-cat of names with spaces, unicode, %, + and &" bash -c "for f in 'with space.txt' 'ünïcødé-日本.txt' 'per%cent.txt' 'a+b=c&d.txt' 'dir with space/inner #2.txt'; do nfs-cat \"nfs://127.0.0.1/names/\$f?nfsport=$port&mountport=$port&version=3\" | cmp - \"$work/tree/names/\$f\" || exit 1; done"
check "nfs-cp into a repo fails (read-only)" bash -c "! nfs-cp '$work/bsrc/hello.txt' '$(url "$port" /x.txt)' 2>&1"
check "nothing was created in the repo" bash -c "! nfs-ls '$(url "$port" "")' | grep -q ' x.txt$'"
probe handles save "$port" "$work/repo-handles" README.md weights/model.safetensors nested/d0/d1 names >/dev/null

# ---- a bucket, read-write -----------------------------------------------------------------
served bucket bucket alice/nb --poll-interval-secs 1 --metadata-ttl-ms 500
check "every procedure and its error cases (nfs3_client)" probe ops "$port"
check "malformed, unsupported and pipelined RPC" probe raw "$port"
check "a client on an unprivileged port is not served" probe unprivileged "$port"
check "nfs-cat reads a bucket file" bash -c "nfs-cat '$(url "$port" docs/blob.bin)' | cmp - '$work/bsrc/docs/blob.bin'"
head -c 5000000 /dev/urandom > "$work/copied.bin"
check "nfs-cp writes a file" nfs-cp "$work/copied.bin" "$(url "$port" /copied.bin)"
check "which reads back over NFS" bash -c "nfs-cat '$(url "$port" /copied.bin)' | cmp - '$work/copied.bin'"
check "and reaches the bucket (Python client)" eventually bash -c "api alice/nb cat copied.bin | cmp - '$work/copied.bin'"
check "${write_mib} MiB written out of order (UNSTABLE), then COMMIT" bash -c "probe write $port written.bin $write_mib > '$work/w.sha'"
check "COMMIT returned with the file in the bucket (Python client, at once)" bash -c "test \"\$(api alice/nb cat written.bin | sha256sum | cut -d' ' -f1)\" = \"\$(cat '$work/w.sha')\""
check "the ops left the bucket as the procedures said" eventually bash -c "t=\$(api alice/nb tree | cut -d' ' -f1); grep -qx probe-ops/x.bin <<<\"\$t\" && ! grep -q '^probe-ops/f.txt\|^probe-ops/moved.txt\|^probe-ops/copy.txt' <<<\"\$t\""
api alice/nb put remote.txt "changed by someone else"
check "a remote change shows up within the poll window" eventually bash -c "nfs-cat '$(url "$port" /remote.txt)' | grep -qx 'changed by someone else'"
probe handles save "$port" "$work/bucket-handles" hello.txt docs docs/blob.bin written.bin >/dev/null

# ---- restarts: handles kept by clients still resolve ---------------------------------------
kill -TERM "$pid_repo" "$pid_bucket"
check "SIGTERM ends both servers cleanly" bash -c "while kill -0 $pid_repo 2>/dev/null || kill -0 $pid_bucket 2>/dev/null; do sleep 0.1; done; grep -q 'unmounted;' '$work/nfs-repo.log' && grep -q 'unmounted;' '$work/nfs-bucket.log'"
served repo2 repo alice/e2e --poll-interval-secs 0
check "repo handles from before the restart resolve" probe handles check "$port" "$work/repo-handles"
served bucket2 bucket alice/nb --poll-interval-secs 0
check "bucket handles from before the restart resolve" probe handles check "$port" "$work/bucket-handles"
check "a handle of the repo is stale on the bucket" bash -c "out=\$(probe handles check $port '$work/repo-handles' 2>&1); echo \"\$out\"; ! grep -q resolves <<<\"\$out\" && grep -q NFS3ERR_STALE <<<\"\$out\""

# ---- the kernel mount, which this machine cannot do ---------------------------------------
mkdir -p "$work/mnt/kernel"
"$bin/hf-mount-nfs" --hub-endpoint "$ep" --cache-dir "$work/cache-kernel" bucket alice/nb "$work/mnt/kernel" >"$work/kernel.out" 2>&1
rc=$?
check "a kernel mount here fails with one line that names the fix" bash -c "cat '$work/kernel.out'; test $rc -ne 0 && test \$(wc -l < '$work/kernel.out') -eq 1 && grep -q 'hf-mount-nfs: .*\(nfs-common\|NFS client\|needs root\)' '$work/kernel.out'"
check "and leaves nothing behind" bash -c "! mountpoint -q '$work/mnt/kernel' && test -z \"\$(ls -A '$work/mnt/kernel')\" && test ! -e '$work/cache-kernel/journal'"
check "bad flags are a clear error" bash -c "'$bin/hf-mount-nfs' --nfs-listen nowhere bucket alice/nb '$work/mnt/kernel' 2>&1 | grep -q \"invalid value 'nowhere'\""

echo "# $pass passed, $fail failed"
[ "$fail" -eq 0 ]
