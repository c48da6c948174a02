# Shared by the benchmarks: a work dir cleaned up on exit, timing and statistics helpers, and
# hubsim on loopback (`start_hubsim`, sets $ep). Expects $bin to be set by the caller.
work=$(mktemp -d /tmp/hfm-bench.XXXXXX)
# xet-core clients (hubsim seed, huggingface_hub) keep a dedup cache per CAS URL under
# HF_XET_CACHE; a hubsim reusing a port another run's hubsim had would inherit its entries and
# skip uploading what that one held (seen: a file's reconstruction 404 after a seed). One per run.
export HF_XET_CACHE="$work/xet-client-cache"
pids=()
# CPU time the hypervisor gave to other guests while this bench ran ("steal" in /proc/stat): on a
# shared VM it can take a third of the cores for minutes, and every figure of such a run is noise.
steal_ticks() { awk '/^cpu /{print $9}' /proc/stat; }
bench_started=$(date +%s.%N); steal_at_start=$(steal_ticks)
report_steal() {
  python3 -c "
import os
wall = $(date +%s.%N) - $bench_started
stolen = ($(steal_ticks) - $steal_at_start) / os.sysconf('SC_CLK_TCK')
share = stolen / (wall * os.cpu_count())
print(f'hypervisor steal during this bench: {stolen:.2f} cpu-s of {wall:.0f} s on {os.cpu_count()} cores ({share:.0%})'
      + ('; figures of this run are noise' if share > 0.05 else ''))"
}
cleanup() {
  report_steal
  for m in "$work"/mnt*; do if mountpoint -q "$m" 2>/dev/null; then fusermount3 -u "$m"; fi; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
# Empty the kernel's page cache (as root; elsewhere a no-op), so a read is cold.
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
mbps() { python3 -c "print(f'{$1/1e6/($3-$2):.1f}')"; }
median() { python3 -c "import statistics,sys; print(f'{statistics.median(float(x) for x in sys.argv[1:]):.1f}')" "$@"; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
machine() { echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"; }

# start_mount DIR ARGS... : `hf-mount-fuse --hub-endpoint $ep ARGS... DIR`, its output appended to
# ${mount_log:-$work/mount.log}; returns once DIR is mounted (exits if the mount dies first) -> $mpid
start_mount() {
  local dir=$1 log=${mount_log:-$work/mount.log}; shift
  mkdir -p "$dir"
  "$bin/hf-mount-fuse" --hub-endpoint "$ep" "$@" "$dir" >>"$log" 2>&1 &
  mpid=$!; pids+=($mpid)
  until mountpoint -q "$dir"; do
    kill -0 "$mpid" 2>/dev/null || { echo "the mount of $dir did not start: $(tail -3 "$log")" >&2; exit 1; }
    sleep 0.005
  done
}

start_hubsim() { # start_hubsim [ARGS...] -> $ep, $hubsim_pid
  # Emptied here, not only by the redirection below, which the background child performs when it
  # gets to it: a restart could otherwise read the previous hubsim's endpoint line.
  : >"$work/hubsim.out"
  "$bin/hubsim" serve "$@" >"$work/hubsim.out" 2>"$work/hubsim.err" &
  hubsim_pid=$!; pids+=($hubsim_pid)
  for _ in $(seq 100); do grep -q endpoint= "$work/hubsim.out" && break; sleep 0.1; done
  ep=$(sed -n 's/^endpoint=//p' "$work/hubsim.out")
  [ -n "$ep" ] || { echo "hubsim did not start: $(cat "$work/hubsim.err")" >&2; exit 1; }
}
