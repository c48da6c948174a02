# Shared by the end-to-end scripts: a work dir cleaned up on exit, `check`, `mounted`,
# `listing`, and a hubsim started on loopback (`start_hubsim`, sets $ep).
# Expects $bin (directory of the release binaries) to be set by the caller. Every mount uses the
# runtime named by HF_MOUNT_RUNTIME (smol by default; CI runs each suite with both).
work=$(mktemp -d /tmp/hfm-e2e.XXXXXX)
# xet-core clients (hubsim seed, huggingface_hub) keep a dedup cache per CAS URL under
# HF_XET_CACHE; a hubsim reusing a port another run's hubsim had would inherit its entries and
# skip uploading what that one held (seen: a file's reconstruction 404 after a seed). One per run.
export HF_XET_CACHE="$work/xet-client-cache"
export HF_MOUNT_RUNTIME=${HF_MOUNT_RUNTIME:-smol}
echo "# runtime: $HF_MOUNT_RUNTIME"
pass=0; fail=0; pids=()

cleanup() {
  for m in "$work"/mnt/*; do mountpoint -q "$m" 2>/dev/null && fusermount3 -u "$m" 2>/dev/null; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

check() { # check NAME COMMAND...
  local name=$1; shift
  if "$@" >"$work/out" 2>&1; then pass=$((pass+1)); echo "ok   $name"
  else fail=$((fail+1)); echo "FAIL $name"; sed 's/^/     /' "$work/out" | tail -20; fi
}

MOUNT_EXTRA=()  # flags every `mounted` call adds (a script may set it)
mounted() { # mounted NAME ARGS... -> mounts at $work/mnt/NAME, waits until usable
  local name=$1; shift
  mkdir -p "$work/mnt/$name"
  "$bin/hf-mount-fuse" --hub-endpoint "$ep" --cache-dir "$work/cache-$name" "${MOUNT_EXTRA[@]}" "$@" "$work/mnt/$name" >"$work/mount-$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    mountpoint -q "$work/mnt/$name" && grep -q "runtime ${HF_MOUNT_RUNTIME^}" "$work/mount-$name.log" && return 0
    sleep 0.1
  done
  cat "$work/mount-$name.log"; return 1
}

# Retry a check for up to 15 s (for changes that arrive asynchronously: commits, polls).
eventually() { for _ in $(seq 60); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done; "$@"; }

listing() { (cd "$1" && find . -mindepth 1 | LC_ALL=C sort); }

start_hubsim() { # start_hubsim [ARGS...] -> $ep
  "$bin/hubsim" serve --user alice:alice-token --user bob:bob-token "$@" >"$work/hubsim.out" 2>"$work/hubsim.err" &
  pids+=($!)
  for _ in $(seq 100); do grep -q endpoint= "$work/hubsim.out" && break; sleep 0.1; done
  ep=$(sed -n 's/^endpoint=//p' "$work/hubsim.out" | head -1)
  [ -n "$ep" ] || { cat "$work/hubsim.err"; exit 1; }
}

requests() { curl -s "$ep/_emulator/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }
fault() { curl -sf -X POST "$ep/_emulator/faults" -H 'content-type: application/json' -d "$1" >/dev/null; }
