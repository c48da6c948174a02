"""Build the end-to-end test repo tree in a directory: one large xet file, hundreds of small
files nested 5 deep, a 2,500-entry directory (forces tree pagination) and awkward names."""
import os
import random
import sys


def write(root, rel, data):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main(root, big_mib, version):
    rng = random.Random(1234)
    # Large xet file: random bytes, written in 1 MiB blocks to keep memory flat.
    path = os.path.join(root, "weights", "model.safetensors")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        for _ in range(big_mib):
            f.write(rng.randbytes(1 << 20))
    # Medium xet files.
    write(root, "weights/shard-1.bin", rng.randbytes(3 << 20))
    write(root, "weights/tiny-xet.bin", rng.randbytes((1 << 20) + 17))
    # Hundreds of small regular files, nested 5 deep.
    for i in range(300):
        depth = i % 6
        parts = [f"d{j}" for j in range(depth)]
        write(root, "/".join(["nested"] + parts + [f"file-{i}.txt"]), f"file {i} {rng.random()}\n".encode() * (i % 7 + 1))
    # A directory larger than two tree pages.
    for i in range(2500):
        write(root, f"many/entry-{i:05d}.json", ('{"i": %d}\n' % i).encode())
    # Awkward names.
    for name in ["with space.txt", "hash#1.txt", "per%cent.txt", "what?.txt", "ünïcødé-日本.txt", "a+b=c&d.txt", "dir with space/inner #2.txt"]:
        write(root, "names/" + name, f"name test {name}\n".encode())
    write(root, "empty.txt", b"")
    write(root, "README.md", f"# e2e repo\nversion {version}\n".encode())
    write(root, "config.json", ('{"version": %d}\n' % version).encode())


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
