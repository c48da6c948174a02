#!/usr/bin/env bash
# End to end with real programs writing the way checkpoints, datasets and repositories are
# written, into a default (streaming) bucket mount, and sqlite3 into an advanced one:
# safetensors (save, then load through mmap), a checkpoint saved to a temporary file and
# renamed over the last one, pyarrow parquet, rsync (default and --inplace), git init/add/commit,
# sqlite3, editors' saves (sed -i, vi), and advisory locks across processes (locks.py). Then unmount, remount, and everything must read back
# the same, work the same, and match what the bucket holds (through the Python client).
# Usage: tests/e2e/real_programs.sh [TARGET_DIR]   needs numpy, safetensors, pyarrow, git, rsync,
# sqlite3 and vi (.ci/run installs them).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target}/release
source "$here/lib.sh"

start_hubsim
curl -sf -X POST "$ep/api/buckets/alice/real" -H "authorization: Bearer alice-token" >/dev/null
mounted s --hf-token alice-token bucket alice/real
mounted a --hf-token alice-token --advanced-writes --flush-debounce-ms 200 bucket alice/real/db
m=$work/mnt/s

check "advisory locks across processes (filelock, lockf ranges, F_GETLK, F_SETLKW, kill -9)" python3 "$here/locks.py" "$m/locks"
check "the same on an advanced mount" python3 "$here/locks.py" "$work/mnt/a/locks"
# Large enough (32 MiB; each checkpoint 9 MiB) that the files stream while safetensors writes them.
check "safetensors: save, then load back through mmap" python3 - "$m/ckpt" <<'PY'
import os, sys
import numpy as np
from safetensors.numpy import save_file, load_file
d = sys.argv[1]; os.makedirs(d, exist_ok=True)
rng = np.random.default_rng(3)
tensors = {f"layer{i}.weight": rng.standard_normal((1024, 1024 + i), dtype=np.float32) for i in range(8)}
save_file(tensors, os.path.join(d, "model.safetensors"))
back = load_file(os.path.join(d, "model.safetensors"))
assert all(np.array_equal(back[k], v) for k, v in tensors.items()), "tensors differ"
PY
check "a checkpoint saved to a temporary file and renamed over the previous one" python3 - "$m/ckpt" <<'PY'
import os, sys
import numpy as np
from safetensors.numpy import save_file, load_file
d = sys.argv[1]
for step in range(3):
    state = {"step": np.array([step]), "w": np.full((1536, 1536), step, dtype=np.float32)}
    tmp = os.path.join(d, f".last.safetensors.{step}.tmp")
    save_file(state, tmp)
    os.replace(tmp, os.path.join(d, "last.safetensors"))
assert load_file(os.path.join(d, "last.safetensors"))["step"][0] == 2
PY
check "pyarrow: write a parquet dataset and read it back" python3 - "$m/data" <<'PY'
import os, sys
import pyarrow as pa, pyarrow.parquet as pq
d = sys.argv[1]; os.makedirs(d, exist_ok=True)
t = pa.table({"id": list(range(50_000)), "text": [f"row {i}" for i in range(50_000)]})
pq.write_table(t, os.path.join(d, "train.parquet"), row_group_size=5000)
assert pq.read_table(os.path.join(d, "train.parquet")).equals(t)
PY

mkdir -p "$work/rsrc"; python3 "$here/make_tree.py" "$work/rsrc" 8 0 >/dev/null
check "rsync -a of a tree" rsync -a "$work/rsrc/" "$m/rsync/"
python3 - "$work/rsrc/weights/model.safetensors" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(3 << 20); f.write(b"changed in the middle" * 1000)
PY
echo "new line" >>"$work/rsrc/README.md"
check "rsync again after changes (temporary files renamed into place)" rsync -a "$work/rsrc/" "$m/rsync/"
head -c 100000 /dev/urandom >>"$work/rsrc/weights/model.safetensors"
check "rsync --inplace (writes in the middle of the existing file)" rsync -a --inplace "$work/rsrc/" "$m/rsync/"
check "rsync copies read back identical" diff -r "$work/rsrc" "$m/rsync"

git_in() { git -C "$m/repo" -c user.name=e2e -c user.email=e2e@example.com "$@"; }
check "git init, add, commit inside the mount" bash -c "mkdir -p '$m/repo' && git -C '$m/repo' init -q && cp -r '$here'/*.py '$m/repo/' && git -C '$m/repo' add -A && git -C '$m/repo' -c user.name=e2e -c user.email=e2e@example.com commit -qm first"
echo "# more" >>"$m/repo/lib.sh" 2>/dev/null || echo "# more" >"$m/repo/extra.txt"
check "a second commit" bash -c "git -C '$m/repo' add -A && git -C '$m/repo' -c user.name=e2e -c user.email=e2e@example.com commit -qm second"
check "git log and fsck are happy" bash -c "test \$(git -C '$m/repo' log --oneline | wc -l) -eq 2 && git -C '$m/repo' fsck --strict 2>&1"

check "sqlite3 in an advanced mount: create, insert, update, query" bash -c "sqlite3 '$work/mnt/a/app.db' 'create table t(k integer primary key, v text); begin; insert into t(v) select printf(\"value %d\", value) from generate_series(1, 2000); commit; update t set v = \"updated\" where k % 7 = 0;' 2>&1 && test \$(sqlite3 '$work/mnt/a/app.db' 'select count(*) from t where v = \"updated\"') -eq 285"

printf 'alpha\nbeta\ngamma\n' >"$m/edit.txt"
check "sed -i (a temporary file renamed over the original)" bash -c "sed -i 's/beta/BETA/' '$m/edit.txt' && grep -qx BETA '$m/edit.txt'"
check "vi saves a file" bash -c "vi -es -c '%s/gamma/GAMMA/' -c 'wq' '$m/edit.txt' && grep -qx GAMMA '$m/edit.txt'"

echo "# unmount, remount, compare"
# db/ is the advanced mount's (the streaming mount may show it too, if it listed it lately).
(cd "$m" && find . -path ./db -prune -o -type f -print0 | xargs -0 sha256sum | LC_ALL=C sort -k2) >"$work/before.sums"
(cd "$work/mnt/a" && find . -type f -print0 | xargs -0 sha256sum | sed 's| ./| ./db/|' | LC_ALL=C sort -k2) >>"$work/before.sums"
LC_ALL=C sort -k2 -o "$work/before.sums" "$work/before.sums"
for name in s a; do
  pid=$(pgrep -f "hf-mount-fuse.*mnt/$name\$"); kill -TERM "$pid"
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
mounted s2 --hf-token alice-token bucket alice/real
m2=$work/mnt/s2
check "after remount every file reads back the same" bash -c "cd '$m2' && find . -type f -print0 | xargs -0 sha256sum | LC_ALL=C sort -k2 | diff '$work/before.sums' -"
check "the bucket (through Python) holds exactly that" bash -c "python3 '$here/bucket_api.py' '$ep' alice/real sums | LC_ALL=C sort -k2 | diff '$work/before.sums' -"
check "after remount: safetensors loads" python3 -c "
from safetensors.numpy import load_file; import sys
assert load_file(sys.argv[1])['step'][0] == 2 and len(load_file(sys.argv[2])) == 8" "$m2/ckpt/last.safetensors" "$m2/ckpt/model.safetensors"
check "after remount: parquet reads" python3 -c "import pyarrow.parquet as pq, sys; assert pq.read_table(sys.argv[1]).num_rows == 50000" "$m2/data/train.parquet"
check "after remount: git log and fsck" bash -c "test \$(git -C '$m2/repo' log --oneline | wc -l) -eq 2 && git -C '$m2/repo' fsck --strict 2>&1"
check "after remount: sqlite3 answers" bash -c "test \$(sqlite3 '$m2/db/app.db' 'select count(*) from t') -eq 2000"

# A read-only mount keeps local copies (root): safetensors loads the 32 MiB model twice with
# safe_open (mmap); the second load reads the copy through the kernel's passthrough.
mounted ro --hf-token alice-token --read-only bucket alice/real
check "read-only mount: safetensors loads a model twice, the second time through its local copy" python3 - "$work/mnt/ro/ckpt/model.safetensors" <<'PY'
import sys, time
import numpy as np
from safetensors import safe_open
def load(path):
    with safe_open(path, framework="np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}
first = load(sys.argv[1])
time.sleep(0.5)  # the first load's release reaches the mount
second = load(sys.argv[1])
assert len(first) == 8 and all(np.array_equal(first[k], second[k]) for k in first)
PY
pid=$(pgrep -f "hf-mount-fuse.*mnt/ro\$"); kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
check "and the unmount counts opens through the copy" grep -Eq '; 1 local copies, [1-9][0-9]* opens through them' "$work/mount-ro.log"
# The copy outlives its mount: the next read-only mount of the same cache dir loads the model
# through it from the first open, reading none of it through the mount.
mounted ro --hf-token alice-token --read-only bucket alice/real
check "a new mount of the same cache dir: safetensors loads the model through the copy at once" python3 -c "
from safetensors.numpy import load_file; import sys
assert len(load_file(sys.argv[1])) == 8" "$work/mnt/ro/ckpt/model.safetensors"
pid=$(pgrep -f "hf-mount-fuse.*mnt/ro\$"); kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
check "and reads none of it through the mount" grep -Eq ', 0 bytes fetched \(0 from CAS\) for 0 bytes read;.*; 0 local copies, [1-9][0-9]* opens through them' "$work/mount-ro.log"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
