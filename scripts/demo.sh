#!/usr/bin/env bash
# Build everything, start the bundled offline hubsim, seed a demo repo and a demo bucket, and
# mount them: the repo read-only at ./demo-mnt, the bucket read-write at ./demo-bucket.
# Ctrl-C unmounts both (the bucket saves what was written first) and stops hubsim.
# Needs fuse3 (apt-get install fuse3 libfuse3-dev pkg-config).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p hubsim -p hf-mount
work=$(mktemp -d /tmp/hfm-demo.XXXXXX)
target/release/hubsim serve --user demo:demo-token >"$work/hubsim.out" &
hub=$!
bucket_pid=
cleanup() {
  [ -n "$bucket_pid" ] && kill -INT "$bucket_pid" 2>/dev/null && wait "$bucket_pid" 2>/dev/null
  kill $hub 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q endpoint= "$work/hubsim.out" && break; sleep 0.1; done
ep=$(sed -n 's/^endpoint=//p' "$work/hubsim.out")
mkdir -p "$work/repo/onnx" "$work/bucket/checkpoints"
printf '{"model_type": "gpt2", "n_layer": 12}\n' >"$work/repo/config.json"
printf '# demo/gpt2\nA demo repo served by hubsim.\n' >"$work/repo/README.md"
head -c $((64 << 20)) /dev/urandom >"$work/repo/model.safetensors"
head -c $((3 << 20)) /dev/urandom >"$work/repo/onnx/model.onnx"
target/release/hubsim seed --endpoint "$ep" --token demo-token repo demo/gpt2 --from "$work/repo"
printf 'step,loss\n1,2.5\n' >"$work/bucket/metrics.csv"
head -c $((8 << 20)) /dev/urandom >"$work/bucket/checkpoints/step-1.bin"
target/release/hubsim seed --endpoint "$ep" --token demo-token bucket demo/runs --from "$work/bucket"
mkdir -p demo-mnt demo-bucket
target/release/hf-mount-fuse --hub-endpoint "$ep" --hf-token demo-token bucket demo/runs demo-bucket &
bucket_pid=$!
echo "mounting demo/gpt2 at ./demo-mnt (read-only) and bucket demo/runs at ./demo-bucket (read-write)"
echo "from $ep; try: echo '2,2.1' >> demo-bucket/metrics.csv (refused: streaming), cp demo-mnt/config.json demo-bucket/"
echo "Ctrl-C to unmount both"
target/release/hf-mount-fuse --hub-endpoint "$ep" --hf-token demo-token repo demo/gpt2 demo-mnt
