"""200 random 1 MiB preads of a file (seed 11); prints their p50 and p99 latency."""
import os
import random
import statistics
import sys
import time

fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
r = random.Random(11)
lat = []
for _ in range(200):
    off = r.randrange(0, size - (1 << 20))
    t = time.perf_counter()
    os.pread(fd, 1 << 20, off)
    lat.append((time.perf_counter() - t) * 1000)
lat.sort()
print(f"p50 {statistics.median(lat):.1f} ms, p99 {lat[197]:.1f} ms")
