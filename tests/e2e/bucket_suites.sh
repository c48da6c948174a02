#!/usr/bin/env bash
# External suites on an advanced-writes bucket mount: pjdfstest (with the expected-failure list
# in tests/e2e/pjdfstest.toml) and fsx (FSX_OPS operations, fixed seed FSX_SEED, printed).
# Usage: tests/e2e/bucket_suites.sh [TARGET_DIR]; needs `cargo install pjdfstest fsx`.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../target}/release
fsx_ops=${FSX_OPS:-50000}
fsx_seed=${FSX_SEED:-20261126}
source "$here/lib.sh"

# pjdfstest switches to other users, who must be able to reach the mountpoint.
chmod 755 "$work"
id tests >/dev/null 2>&1 || echo 'tests:x:::pjdfstest dummy user:/:/usr/sbin/nologin' | newusers
start_hubsim
curl -sf -X POST "$ep/api/buckets/alice/suites" -H "authorization: Bearer alice-token" >/dev/null
mounted x --hf-token alice-token --advanced-writes bucket alice/suites

mkdir "$work/mnt/x/pjd"
pjd() { (cd "$work/mnt/x/pjd" && pjdfstest -c "$here/pjdfstest.toml" -p "$work/mnt/x/pjd") >"$work/pjd.log" 2>&1; local rc=$?; grep -E "FAILED$|^Summary" "$work/pjd.log"; return $rc; }
check "pjdfstest (expected failures listed in pjdfstest.toml)" pjd
echo "# fsx: $fsx_ops operations, seed $fsx_seed"
check "fsx $fsx_ops operations, seed $fsx_seed" bash -c "cd '$work/mnt/x' && fsx -N $fsx_ops -S $fsx_seed -P '$work' '$work/mnt/x/fsx.data' | tail -3"
check "fsx's final file is what the bucket holds (after fsync)" bash -c "python3 -c 'import os,sys; os.fsync(os.open(sys.argv[1], os.O_RDONLY))' '$work/mnt/x/fsx.data' && python3 '$here/bucket_api.py' '$ep' alice/suites cat fsx.data | cmp - '$work/mnt/x/fsx.data'"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
