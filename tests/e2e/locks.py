"""Advisory locks on a mount, across processes, the way programs take them: Python's
`filelock` (flock), `fcntl.lockf` record locks (shared, exclusive, byte ranges, conversion),
F_GETLK naming the holder, F_SETLKW waiting while the mount goes on serving, and release on
close, on exit and on `kill -9` of the holder.

  locks.py DIR     (a directory inside the mount; prints one line per check, exits non-zero
                    on the first failure)
"""
import errno
import fcntl
import multiprocessing as mp
import os
import signal
import struct
import sys
import time

from filelock import FileLock, Timeout

d = sys.argv[1]
os.makedirs(d, exist_ok=True)
path = os.path.join(d, "records.bin")
with open(path, "wb") as f:
    f.write(b"\0" * 4096)


def hold(kind, start, length, ready, release):
    """In a child: take a record lock, say so, hold it until told (or killed)."""
    fd = os.open(path, os.O_RDWR)
    fcntl.lockf(fd, kind, length, start)
    ready.set()
    release.wait(30)
    os.close(fd)


def holder(kind, start=0, length=0):
    ready, release = mp.Event(), mp.Event()
    p = mp.Process(target=hold, args=(kind, start, length, ready, release))
    p.start()
    assert ready.wait(10), "the holder never got its lock"
    return p, release


def try_lock_here(kind, start, length):
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, kind | fcntl.LOCK_NB, length, start)
        os._exit(0)
    except OSError as e:
        os._exit(1 if e.errno in (errno.EAGAIN, errno.EACCES) else 2)


def try_lock(kind, start=0, length=0):
    """Could another process take this lock now? (POSIX locks belong to processes: asking from
    this one would neither conflict with its own locks nor leave them alone on close.)"""
    p = mp.Process(target=try_lock_here, args=(kind, start, length))
    p.start()
    p.join(10)
    assert p.exitcode in (0, 1), f"lockf failed unexpectedly ({p.exitcode})"
    return p.exitcode == 0


def getlk(start, length):
    """F_GETLK for an exclusive lock on the range: (type, pid) of a conflicting holder (asked
    from this process, which holds none)."""
    fd = os.open(path, os.O_RDWR)
    try:
        # struct flock on Linux x86_64: short type, short whence, off_t start, off_t len, pid_t pid.
        arg = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
        out = fcntl.fcntl(fd, fcntl.F_GETLK, arg)
        typ, _, _, _, pid = struct.unpack("hhqqi4x", out)
        return typ, pid
    finally:
        os.close(fd)


def ok(name):
    print(f"ok   {name}", flush=True)


# filelock (flock underneath), the lock ML tooling (huggingface_hub, datasets) takes.
lock_path = os.path.join(d, "job.lock")
ready, release = mp.Event(), mp.Event()


def filelock_holder():
    with FileLock(lock_path):
        ready.set()
        release.wait(30)


p = mp.Process(target=filelock_holder)
p.start()
assert ready.wait(10)
try:
    FileLock(lock_path, timeout=0.3).acquire()
    raise SystemExit("filelock: acquired while another process holds it")
except Timeout:
    pass
release.set()
p.join()
with FileLock(lock_path, timeout=5):
    pass
ok("filelock: a second process waits, then gets the lock once released")

# Exclusive record lock: others can neither share nor take it; F_GETLK names the holder.
p, release = holder(fcntl.LOCK_EX)
assert not try_lock(fcntl.LOCK_EX) and not try_lock(fcntl.LOCK_SH)
typ, pid = getlk(0, 0)
assert (typ, pid) == (fcntl.F_WRLCK, p.pid), (typ, pid, p.pid)
release.set()
p.join()
assert try_lock(fcntl.LOCK_EX)
assert getlk(0, 0)[0] == fcntl.F_UNLCK
ok("lockf exclusive: conflicts refused, F_GETLK names the holder, free once it closes")

# Shared locks share; an exclusive one waits for all of them.
p1, r1 = holder(fcntl.LOCK_SH)
p2, r2 = holder(fcntl.LOCK_SH)
assert try_lock(fcntl.LOCK_SH) and not try_lock(fcntl.LOCK_EX)
r1.set(); r2.set(); p1.join(); p2.join()
ok("lockf shared: readers share, a writer is refused while any holds")

# Byte ranges.
p, release = holder(fcntl.LOCK_EX, 0, 100)
assert try_lock(fcntl.LOCK_EX, 100, 100), "a disjoint range must be free"
assert not try_lock(fcntl.LOCK_EX, 50, 100), "an overlapping range must conflict"
release.set()
p.join()
ok("byte ranges: disjoint ranges do not conflict, overlapping ones do")

# F_SETLKW waits without stopping the mount: another process reads meanwhile.
p, release = holder(fcntl.LOCK_EX)
fd = os.open(path, os.O_RDWR)
started = time.monotonic()


def release_later(ev):
    time.sleep(0.5)
    ev.set()


releaser = mp.Process(target=release_later, args=(release,))
releaser.start()
reader = mp.Process(target=lambda: [open(path, "rb").read() for _ in range(20)])
reader.start()
fcntl.lockf(fd, fcntl.LOCK_EX)  # blocks until the holder lets go
waited = time.monotonic() - started
reader.join(10)
assert reader.exitcode == 0, "reads during the wait failed"
assert waited >= 0.4, f"did not wait ({waited:.2f}s)"
os.close(fd)
p.join(); releaser.join()
ok(f"F_SETLKW waits for the holder ({waited:.2f}s) while other processes read the mount")

# Conversion: shared to exclusive and back, on one descriptor.
fd = os.open(path, os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_SH)
fcntl.lockf(fd, fcntl.LOCK_EX)
assert not try_lock(fcntl.LOCK_SH)
fcntl.lockf(fd, fcntl.LOCK_SH)
assert try_lock(fcntl.LOCK_SH) and not try_lock(fcntl.LOCK_EX)
fcntl.lockf(fd, fcntl.LOCK_UN)
assert try_lock(fcntl.LOCK_EX)
os.close(fd)
ok("conversion: shared to exclusive and back")

# kill -9 of the holder releases its locks, record and flock alike.
p, _ = holder(fcntl.LOCK_EX)
os.kill(p.pid, signal.SIGKILL)
p.join()
assert try_lock(fcntl.LOCK_EX)


def flock_forever(ready):
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    ready.set()
    time.sleep(60)


ready = mp.Event()
p = mp.Process(target=flock_forever, args=(ready,))
p.start()
assert ready.wait(10)
fd = os.open(lock_path, os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    raise SystemExit("flock: taken while held")
except BlockingIOError:
    pass
os.kill(p.pid, signal.SIGKILL)
p.join()
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.close(fd)
ok("kill -9 of a holder releases its record lock and its flock")
