#!/usr/bin/env bash
# Loading a model the way ML code does, on a repo mount against hubsim on loopback: a 4-shard
# safetensors model (BENCH_MIB in all, 1 GiB by default) opened with safetensors' mmap and
# every tensor touched, in a new process: first load (cold: nothing cached anywhere), second
# load (new process, same mount: the kernel's page cache), and a load in a new mount of the same
# cache dir with the page cache dropped (its local copies). Beside them: xet-core downloading the
# four shards to disk in parallel (what `hf download` does) and then the same load from the
# local copy. Default flags (disk chunk cache on, in a fresh cache dir). Not a test: nothing
# here passes or fails.
# Usage: bench/model_load.sh [TARGET_DIR]   env: BENCH_MIB (1024 for the whole model)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../target}/release
mib=${BENCH_MIB:-1024}
source "$here/lib.sh"

start_hubsim
mkdir -p "$work/model" "$work/local"
# 4 shards of float32 tensors of 16 MiB each (random bytes: Xet cannot dedup them).
python3 - "$work/model" "$mib" <<'PY'
import json, sys
import numpy as np
from safetensors.numpy import save_file
root, mib = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(11)
per_shard = mib // 4
index = {"metadata": {"total_size": 0}, "weight_map": {}}
for s in range(4):
    name = f"model-{s + 1:05}-of-00004.safetensors"
    tensors = {f"layers.{s}.{t}.weight": rng.standard_normal((1024, 4096), dtype=np.float32) for t in range(per_shard // 16)}
    save_file(tensors, f"{root}/{name}")
    for k, v in tensors.items():
        index["weight_map"][k] = name
        index["metadata"]["total_size"] += v.nbytes
json.dump(index, open(f"{root}/model.safetensors.index.json", "w"))
PY
"$bin/hubsim" seed --endpoint "$ep" repo bench/model --from "$work/model" >/dev/null
total=$(du -cb "$work"/model/*.safetensors | tail -1 | cut -f1)
echo "$(machine); 4 safetensors shards, $((total >> 20)) MiB"

# Load every shard through safetensors' mmap and touch every byte of every tensor.
load() { python3 - "$1" <<'PY'
import glob, sys
import numpy as np
from safetensors import safe_open
touched = 0
for path in sorted(glob.glob(f"{sys.argv[1]}/*.safetensors")):
    with safe_open(path, framework="numpy") as f:
        for name in f.keys():
            t = f.get_tensor(name)
            touched += int(t.view(np.uint32)[:: 1024].sum() & 1) + t.nbytes
print(touched)
PY
}
timed_load() { local t0 t1; t0=$(now); load "$1" >/dev/null; t1=$(now); mbps "$total" "$t0" "$t1"; }

# Reference: xet-core downloads the four shards to disk at once, then the load reads them.
drop_caches
hash_of() { curl -sI "$ep/bench/model/resolve/main/$1" | sed -n 's/^x-xet-hash: //Ip' | tr -d '\r'; }
t0=$(now)
dl=()
for f in "$work"/model/*.safetensors; do
  name=$(basename "$f")
  "$bin/hubsim" cas-download --endpoint "$ep" --hash "$(hash_of "$name")" --size "$(stat -c %s "$f")" \
    --cache-dir "$work/dl-cache" --out "$work/local/$name" >/dev/null &
  dl+=($!)
done
for p in "${dl[@]}"; do wait "$p"; done
t1=$(now)
download=$(mbps "$total" "$t0" "$t1")
t2=$(now); load "$work/local" >/dev/null; t3=$(now)
download_then_load=$(mbps "$total" "$t0" "$t3")
local_load=$(mbps "$total" "$t2" "$t3")

start_mount "$work/mnt" --cache-dir "$work/mount-cache" repo bench/model
drop_caches
first=$(timed_load "$work/mnt")
second=$(timed_load "$work/mnt")
fusermount3 -u "$work/mnt"; wait "$mpid" 2>/dev/null || true
# A new mount of the same cache dir (a restart, say) with the page cache dropped: the local copies
# the first mount made of the shards are opened at once; against loading the local files cold.
start_mount "$work/mnt" --cache-dir "$work/mount-cache" repo bench/model
drop_caches
remounted=$(timed_load "$work/mnt")
fusermount3 -u "$work/mnt"; wait "$mpid" 2>/dev/null || true
drop_caches
local_cold=$(timed_load "$work/local")

echo "download to disk (xet-core, 4 at once): ${download} MB/s; then loading the local copy: ${local_load} MB/s; both: ${download_then_load} MB/s"
echo "first load through the mount (cold):     ${first} MB/s  vs download + load $(ratio "$first" "$download_then_load")x  (limit: >= 1.0)"
echo "second load, new process (page cache):   ${second} MB/s  vs loading the local copy $(ratio "$second" "$local_load")x  (limit: >= 0.9)"
echo "load in a new mount, page cache dropped: ${remounted} MB/s  vs loading the local files cold ${local_cold} MB/s: $(ratio "$remounted" "$local_cold")x  (limit: >= 0.9)"
