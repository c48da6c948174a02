"""Write 20 files into a bucket mount the ways programs do, mirror what each write acknowledged
into REF, touch READY, then hold the files still being written open until killed. Used by
crash_recovery.sh, which kills the mount with SIGKILL while this runs.

  crash_writer.py MNT REF READY
    closed/N.bin   8 files written and closed, not fsync'd (one empty, one 3 MB)
    synced/N.bin   5 files written, fsync'd and closed (already in the bucket)
    open/N.bin     5 files in the middle of being written (what each write returned counts)
    ckpt/model.bin written to a temporary name, closed, renamed over (checkpoint pattern)
    ckpt/weights.safetensors  saved by safetensors and closed
    base/edited.txt  an existing file edited in place (no O_TRUNC)
"""
import os
import random
import sys

mnt, ref, ready = sys.argv[1:]
rng = random.Random(7)


def mirror(rel, data, mode="wb"):
    path = os.path.join(ref, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(data)


def write_all(fd, data):
    done = 0
    while done < len(data):
        done += os.write(fd, data[done:done + (1 << 20)])


for d in ("closed", "synced", "open", "ckpt"):
    os.makedirs(os.path.join(mnt, d), exist_ok=True)

for i in range(8):
    size = [0, 1, 4096, 3 << 20][i] if i < 4 else rng.randrange(1, 200_000)
    data = rng.randbytes(size)
    with open(os.path.join(mnt, f"closed/{i}.bin"), "wb") as f:
        f.write(data)
    mirror(f"closed/{i}.bin", data)

for i in range(5):
    data = rng.randbytes(rng.randrange(1, 500_000))
    fd = os.open(os.path.join(mnt, f"synced/{i}.bin"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    write_all(fd, data)
    os.fsync(fd)
    os.close(fd)
    mirror(f"synced/{i}.bin", data)

data = rng.randbytes(1 << 20)
with open(os.path.join(mnt, "ckpt/.model.bin.tmp"), "wb") as f:
    f.write(data)
os.rename(os.path.join(mnt, "ckpt/.model.bin.tmp"), os.path.join(mnt, "ckpt/model.bin"))
mirror("ckpt/model.bin", data)

# A real library's checkpoint, saved and closed, not yet uploaded at the kill.
import numpy as np  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

tensors = {"w": np.arange(100_000, dtype=np.float32).reshape(100, 1000), "b": np.ones(1000, dtype=np.float16)}
save_file(tensors, os.path.join(mnt, "ckpt/weights.safetensors"))
save_file(tensors, os.path.join(ref, "ckpt/weights.safetensors"))

fd = os.open(os.path.join(mnt, "base/edited.txt"), os.O_RDWR)
os.pwrite(fd, b"EDITED", 4)
os.close(fd)
with open(os.path.join(ref, "base/edited.txt"), "r+b") as f:
    f.seek(4)
    f.write(b"EDITED")

held = []
for i in range(5):
    fd = os.open(os.path.join(mnt, f"open/{i}.bin"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    data = rng.randbytes(rng.randrange(1, 2 << 20))
    write_all(fd, data)
    mirror(f"open/{i}.bin", data)
    held.append(fd)

open(ready, "w").close()
while True:
    os.pause() if hasattr(os, "pause") else __import__("time").sleep(3600)
