"""ArrayPool: reference and memory leaks over many hand-out/drop cycles, and
trim() giving memory back to the OS.

The method of tests/test_leaks.py: each kind runs a warm-up, then n cycles
measured with tracemalloc (Python allocations) and RSS (/proc/self/statm:
C allocations and mapped blocks too); growth beyond a small fixed bound
fails.  POOL_LEAK_CYCLES (default 1,000,000) cycles of arrays of mixed
sizes; the other kinds run a fifth of that (1M of every kind takes about
60 s here) unless POOL_LEAK_FULL=1.  The leak loops are marked slow; the
trim test is not.
"""
import gc
import os
import sys
import tracemalloc

import pytest

np = pytest.importorskip("numpy")

from pool_ext import ArrayPool, BufferPool

CYCLES = int(os.environ.get("POOL_LEAK_CYCLES", "1000000"))
FULL = os.environ.get("POOL_LEAK_FULL", "") not in ("", "0")
TRACED_BOUND = 64 * 1024
RSS_BOUND = 2 * 1024 * 1024
SIZES = [64, 200, 4096, 5000, 65536, 100_000, 1 << 20]


def rss():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return 0


POOL = ArrayPool(max_bytes=16 << 20)


def arrays(n):
    empty, k = POOL.empty, len(SIZES)
    for i in range(n):
        a = empty(SIZES[i % k], np.uint8)
        del a


def arrays_with_views(n):
    for i in range(n):
        a = POOL.zeros((8, SIZES[i % 4] // 8))
        v, t = a[1:], a.T
        del a, v, t


def buffers(n):
    acquire, k = POOL.acquire, len(SIZES)
    for i in range(n):
        acquire(SIZES[i % k]).release()


def buffer_exports(n):
    for i in range(n):
        buf = POOL.acquire(SIZES[i % 4])
        m = memoryview(buf)
        buf.release()
        m.release()


def borrows(n):
    for i in range(n):
        with POOL.borrow(SIZES[i % 4], np.uint8) as a:
            a[0] = 1


def refused(n):
    for i in range(n):
        try:
            POOL.empty(-1 if i & 1 else 3, np.uint8 if i & 1 else object)
        except (ValueError, TypeError):
            pass


def buffer_pool_arrays(n):
    bufs = BufferPool(4096, 2)
    for _ in range(n):
        a = bufs.empty(512)
        del a


def pools(n):
    """Whole pools built and dropped, some with arrays still out."""
    for i in range(n):
        p = ArrayPool(max_bytes=1 << 20)
        a = p.empty(1000)
        if i & 1:
            del p
        del a


SCALE = {arrays: 1, arrays_with_views: 0.2, buffers: 0.2, buffer_exports: 0.2, borrows: 0.2,
         refused: 0.1, buffer_pool_arrays: 0.2, pools: 0.02}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(SCALE), ids=lambda f: f.__name__)
def test_no_leak(kind):
    n = max(1000, int(CYCLES * (1 if FULL else SCALE[kind])))
    warm = max(1000, n // 10)
    tracemalloc.start()
    try:
        kind(warm)
        gc.collect()
        traced0 = tracemalloc.get_traced_memory()[0]
        rss0, blocks0 = rss(), POOL.stats()["blocks"]
        kind(n)
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] - traced0
        grown = rss() - rss0
    finally:
        tracemalloc.stop()
    s = POOL.stats()
    print(f"{kind.__name__}: {n} cycles, traced growth {traced} B, RSS growth {grown} B, "
          f"blocks {blocks0} -> {s['blocks']}")
    assert traced < TRACED_BOUND, f"{traced} bytes of Python allocations leaked over {n} cycles"
    assert grown < RSS_BOUND, f"RSS grew {grown} bytes over {n} cycles"
    assert sum(c["out"] for c in s["classes"].values()) == 0 and s["oversize_out"] == 0
    assert s["blocks"] <= blocks0 + len(SIZES)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads RSS from /proc")
@pytest.mark.parametrize("sizes", [[64 << 20], [16 << 20] * 4, [1 << 20] * 32, [65536] * 64])
def test_trim_gives_memory_back_to_the_os(sizes):
    """Blocks of 64 KiB and more are mapped: freeing them drops RSS by (at
    least 90 % of) the bytes trim() reports."""
    pool = ArrayPool(max_bytes=256 << 20)
    held = [pool.empty(n, np.uint8) for n in sizes]
    for a in held:
        a[::4096] = 1          # touch every page: resident
    del held, a
    gc.collect()
    total = sum(sizes)
    assert pool.retained_bytes == total
    before = rss()
    freed = pool.trim()
    dropped = before - rss()
    print(f"trim freed {freed} B, RSS dropped {dropped} B ({dropped / freed:.1%})")
    assert freed == total
    assert dropped >= 0.9 * freed, (dropped, freed)
