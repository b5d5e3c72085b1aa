"""python -m pool_ext bench: a quick side-by-side timing of pool_ext and the
pools people write by hand.  (benchmarks/ holds the pytest-benchmark suite.)"""
import argparse
import queue
import sys
import threading
import timeit

from pool_ext import ATOMICS, BufferPool, ObjectPool, __version__


def _cases(capacity):
    pool = ObjectPool(object, capacity, prefill=capacity)
    bufs = BufferPool(1 << 20, capacity)
    lst = [object() for _ in range(capacity)]
    sq = queue.SimpleQueue()
    lq = queue.LifoQueue()
    for _ in range(capacity):
        sq.put(object())
        lq.put(object())
    lock = threading.Lock()
    locked = list(lst)

    def lock_pair():
        with lock:
            o = locked.pop()
        with lock:
            locked.append(o)

    acquire, release = pool.acquire, pool.release
    return [
        ("floor: lst.append(lst.pop())", lambda: lst.append(lst.pop())),
        ("pool_ext ObjectPool acquire+release", lambda: release(acquire())),
        ("pool_ext BufferPool 1 MiB acquire+release", lambda: bufs.acquire().release()),
        ("queue.SimpleQueue get+put", lambda: sq.put(sq.get())),
        ("threading.Lock + list", lock_pair),
        ("queue.LifoQueue get+put", lambda: lq.put(lq.get())),
        ("bytearray(1 MiB)", lambda: bytearray(1 << 20)),
    ]


def bench(args):
    print(f"pool_ext {__version__}, core atomics: {ATOMICS}, Python {sys.version.split()[0]}")
    rows = []
    for name, fn in _cases(64):
        n, _ = timeit.Timer(fn).autorange()
        best = min(timeit.repeat(fn, number=n, repeat=args.repeat)) / n
        rows.append((name, best * 1e9))
        print(f"  {name:45s} {best * 1e9:10.1f} ns", flush=True)
    floor = rows[0][1]
    print(f"\nratios to the floor ({floor:.1f} ns):")
    for name, ns in rows[1:]:
        print(f"  {name:45s} {ns / floor:8.2f}x")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pool_ext")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="time pool_ext against pure-Python pools")
    b.add_argument("--repeat", type=int, default=5, help="timing repeats (best is kept)")
    args = parser.parse_args(argv)
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
