#!/usr/bin/env bash
# Build everything, start the bundled offline hubsim, seed a demo repo and mount it at ./demo-mnt.
# Ctrl-C unmounts and stops hubsim. Needs fuse3 (apt-get install fuse3 libfuse3-dev pkg-config).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p hubsim -p hf-mount
work=$(mktemp -d /tmp/hfm-demo.XXXXXX)
target/release/hubsim serve >"$work/hubsim.out" &
hub=$!
trap 'kill $hub 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q endpoint= "$work/hubsim.out" && break; sleep 0.1; done
ep=$(sed -n 's/^endpoint=//p' "$work/hubsim.out")
mkdir -p "$work/repo/onnx"
printf '{"model_type": "gpt2", "n_layer": 12}\n' >"$work/repo/config.json"
printf '# demo/gpt2\nA demo repo served by hubsim.\n' >"$work/repo/README.md"
head -c $((64 << 20)) /dev/urandom >"$work/repo/model.safetensors"
head -c $((3 << 20)) /dev/urandom >"$work/repo/onnx/model.onnx"
target/release/hubsim seed --endpoint "$ep" repo demo/gpt2 --from "$work/repo"
mkdir -p demo-mnt
echo "mounting demo/gpt2 from $ep at ./demo-mnt (Ctrl-C to unmount)"
target/release/hf-mount-fuse --hub-endpoint "$ep" repo demo/gpt2 demo-mnt
