"""8 writer processes x 200 files each, plus 4 readers re-reading what is already there, all at
once on one bucket mount. Prints `sha256  ./path` for every file written (to compare with the
bucket) and fails if any reader saw other bytes than the writer's.

  parallel_writers.py MNT
"""
import hashlib
import multiprocessing as mp
import os
import random
import sys

mnt = sys.argv[1]
WRITERS, FILES, READERS = 8, 200, 4


def content(w, i):
    rng = random.Random(w * 1000 + i)
    return rng.randbytes(rng.choice([0, 1, 100, 4096, 70_000, 300_000]))


def writer(w):
    os.makedirs(os.path.join(mnt, f"par/w{w}"), exist_ok=True)
    for i in range(FILES):
        with open(os.path.join(mnt, f"par/w{w}/{i}.bin"), "wb") as f:
            f.write(content(w, i))


def reader(r, stop):
    rng = random.Random(r)
    checked = 0
    while not stop.is_set() or checked < 50:
        w, i = rng.randrange(WRITERS), rng.randrange(FILES)
        try:
            with open(os.path.join(mnt, f"par/w{w}/{i}.bin"), "rb") as f:
                got = f.read()
        except FileNotFoundError:
            continue
        # A file being written may be seen before its close; it is never other bytes.
        want = content(w, i)
        if not want.startswith(got):
            raise SystemExit(f"reader {r}: par/w{w}/{i}.bin has bytes its writer never wrote")
        checked += 1


if __name__ == "__main__":
    stop = mp.Event()
    readers = [mp.Process(target=reader, args=(r, stop)) for r in range(READERS)]
    writers = [mp.Process(target=writer, args=(w,)) for w in range(WRITERS)]
    for p in readers + writers:
        p.start()
    for p in writers:
        p.join()
    stop.set()
    for p in readers:
        p.join()
    bad = [p.exitcode for p in readers + writers if p.exitcode != 0]
    if bad:
        sys.exit(f"{len(bad)} processes failed")
    for w in range(WRITERS):
        for i in range(FILES):
            print(f"{hashlib.sha256(content(w, i)).hexdigest()}  ./par/w{w}/{i}.bin")
