"""Compare random preads and an mmap of a file in the mount against the local original."""
import mmap
import os
import random
import sys

mounted, original, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
size = os.path.getsize(original)
assert os.path.getsize(mounted) == size, (os.path.getsize(mounted), size)
rng = random.Random(99)
fm, fo = os.open(mounted, os.O_RDONLY), os.open(original, os.O_RDONLY)
for i in range(count):
    length = rng.choice([1, 100, 4096, 65536, 1 << 20, 3 << 20])
    offset = rng.randrange(0, size)
    a, b = os.pread(fm, length, offset), os.pread(fo, length, offset)
    assert a == b, f"pread {i}: offset {offset} length {length}: {len(a)} vs {len(b)} bytes"
# Reads past the end return nothing.
assert os.pread(fm, 10, size) == b""
with open(mounted, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
    for _ in range(20):
        off = rng.randrange(0, size)
        assert m[off:off + 5000] == os.pread(fo, 5000, off)
print(f"{count} random preads and 20 mmap slices match")
