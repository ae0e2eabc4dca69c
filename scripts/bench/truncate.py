"""The bare baseline of a partition drop (scripts/bench-partitions.sh): the
file system alone freeing the same bytes. Writes one file per size given (in
bytes) into DIR, flushes them to disk, prints "ready", waits for a line on
stdin, truncates them one after another (as PostgreSQL's DROP TABLE does at
commit), prints "truncated <MB> MB in <ms> ms", and removes them.

    python3 truncate.py DIR SIZE...
"""
import os
import sys
import time

directory, sizes = sys.argv[1], [int(s) for s in sys.argv[2:]]
os.makedirs(directory, exist_ok=True)
chunk = os.urandom(1 << 20)
paths = []
for i, size in enumerate(sizes):
    path = os.path.join(directory, f"f{i}")
    with open(path, "wb") as f:
        left = size
        while left > 0:
            left -= f.write(chunk[: min(left, len(chunk))])
        f.flush()
        os.fsync(f.fileno())
    paths.append(path)
os.sync()
print("ready", flush=True)
sys.stdin.readline()
started = time.perf_counter()
for path in paths:
    os.truncate(path, 0)
took = time.perf_counter() - started
print(f"truncated {sum(sizes) >> 20} MB in {took * 1000:.0f} ms", flush=True)
for path in paths:
    os.unlink(path)
