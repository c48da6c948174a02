"""The ways programs write files, run against a mount directory MNT, with the same operations
mirrored in a local directory REF (so the bucket can be compared with REF afterwards).

  write_patterns.py MNT REF

Each pattern is checked through the mount as it goes (read-your-writes); the caller checks the
bucket. Exits non-zero with the pattern's name on the first mismatch.
"""
import os
import random
import sys

mnt, ref = sys.argv[1], sys.argv[2]
rng = random.Random(7)


def both(fn):
    """Run fn(root) in the mount and in the mirror; the results must read back the same."""
    name = fn.__name__
    for root in (mnt, ref):
        fn(root)
    for dirpath, _, files in os.walk(os.path.join(ref, name)):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), ref)
            want = open(os.path.join(ref, rel), "rb").read()
            got = open(os.path.join(mnt, rel), "rb").read()
            if got != want:
                sys.exit(f"{name}: {rel} reads back {len(got)} bytes that differ from the {len(want)} written")
    print(f"ok {name}")


blob = rng.randbytes(3 << 20)


def preallocated_checkpoint(root):
    """ftruncate to the final size, write sequentially into a temp file, rename over the target."""
    d = os.path.join(root, "preallocated_checkpoint")
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "model.bin"), "wb").write(b"old checkpoint")
    tmp = os.path.join(d, ".model.bin.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(fd, len(blob))
    for i in range(0, len(blob), 1 << 20):
        os.pwrite(fd, blob[i : i + (1 << 20)], i)
    os.close(fd)
    os.rename(tmp, os.path.join(d, "model.bin"))


def fallocated(root):
    """posix_fallocate the final size first, then write sequentially."""
    d = os.path.join(root, "fallocated")
    os.makedirs(d, exist_ok=True)
    fd = os.open(os.path.join(d, "shard.bin"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.posix_fallocate(fd, 0, 1 << 20)
    os.write(fd, blob[: 1 << 20])
    os.close(fd)


def hole(root):
    """Seek forward past the end, leaving a hole that reads as zeros."""
    d = os.path.join(root, "hole")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "sparse.bin"), "wb") as f:
        f.write(b"head")
        f.seek(5 << 20)
        f.write(b"tail")


def rewrite_at_offset(root):
    """Write, then go back and patch a header (as zip and tar writers do)."""
    d = os.path.join(root, "rewrite_at_offset")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "archive.bin"), "wb") as f:
        f.write(b"\0" * 16)
        f.write(blob[: 2 << 20])
        f.seek(0)
        f.write(b"HEADER-LENGTH-OK")


def edit_existing(root):
    """Open an existing file for writing without O_TRUNC and change bytes in the middle."""
    d = os.path.join(root, "edit_existing")
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "notes.txt")
    open(p, "w").write("line one\nline two\nline three\n")
    fd = os.open(p, os.O_WRONLY)
    os.pwrite(fd, b"LINE", 9)
    os.close(fd)


def append(root):
    """O_APPEND, the way loggers and `>>` write."""
    d = os.path.join(root, "append")
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "log.txt")
    open(p, "w").write("first\n")
    for i in range(3):
        with open(p, "a") as f:
            f.write(f"appended {i}\n")


def read_your_writes(root):
    """Read back while the file is still open for writing."""
    d = os.path.join(root, "read_your_writes")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "rw.bin"), "w+b") as f:
        f.write(blob[:100_000])
        f.flush()
        f.seek(0)
        if f.read() != blob[:100_000]:
            sys.exit("read_your_writes: an open file did not read back its own writes")
        f.write(b"more")


def replace_open_target(root):
    """Atomic replace across directories while a reader holds the old file open."""
    d = os.path.join(root, "replace_open_target")
    os.makedirs(os.path.join(d, "staging"), exist_ok=True)
    target = os.path.join(d, "current.json")
    open(target, "w").write('{"version": 1}')
    reader = open(target)
    new = os.path.join(d, "staging", "next.json")
    open(new, "w").write('{"version": 2}')
    os.replace(new, target)
    if reader.read() != '{"version": 1}':
        sys.exit("replace_open_target: a reader of the replaced file lost its content")
    reader.close()


for pattern in (
    preallocated_checkpoint,
    fallocated,
    hole,
    rewrite_at_offset,
    edit_existing,
    append,
    read_your_writes,
    replace_open_target,
):
    both(pattern)
