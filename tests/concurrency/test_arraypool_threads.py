"""Threads hammering one ArrayPool: no block is handed out twice, the byte
budget holds, nothing is lost.

Each thread takes arrays (and now and then a PooledBuffer or a borrow())
of random sizes, writes its id over the first and last 8 bytes, keeps a few
at once, and checks its ids before dropping one: a block handed to two
owners at once is overwritten by the other.  A watcher samples
retained_bytes <= max_bytes the whole time, and trims now and then.

    POOL_STRESS_THREADS=8  POOL_STRESS_OPS=50000  POOL_TEST_SEED=<seed>

8 threads x 50,000 operations take about 4 s here: not marked slow.
"""
import os
import random
import threading

import pytest

np = pytest.importorskip("numpy")

from pool_ext import ArrayPool

THREADS = int(os.environ.get("POOL_STRESS_THREADS", "8"))
OPS = int(os.environ.get("POOL_STRESS_OPS", "50000"))
BUDGET = 8 << 20


def hammer(pool, threads, ops, seed):
    errors = []
    done = threading.Event()
    budget_breaches = []

    def worker(tid):
        rng = random.Random(seed * 1000 + tid)
        me = np.uint64(tid + 1)
        held = []
        try:
            for _ in range(ops):
                if held and (len(held) >= 4 or rng.random() < 0.5):
                    kind, item, n = held.pop(rng.randrange(len(held)))
                    view = item if kind == "array" else np.frombuffer(item, np.uint8)
                    first = view[:8].view(np.uint64)[0]
                    last = view[n - 8:n].view(np.uint64)[0]
                    if first != me or last != me:
                        errors.append(f"thread {tid}: a {n}-byte block had another owner")
                    del view
                    if kind == "buffer":
                        item.release()
                    continue
                n = max(16, int(2 ** rng.uniform(4, 21)))   # 16 B .. 2 MiB
                r = rng.random()
                if r < 0.1:
                    item, kind = pool.acquire(n), "buffer"
                    view = np.frombuffer(item, np.uint8)
                elif r < 0.2:
                    with pool.borrow(n, np.uint8) as a:
                        a[:8].view(np.uint64)[0] = me
                        a[n - 8:n].view(np.uint64)[0] = me
                        if a[:8].view(np.uint64)[0] != me:
                            errors.append(f"thread {tid}: borrowed block had another owner")
                    continue
                else:
                    item = view = pool.empty(n, np.uint8)
                    kind = "array"
                view[:8].view(np.uint64)[0] = me
                view[n - 8:n].view(np.uint64)[0] = me
                del view
                held.append((kind, item, n))
            for kind, item, n in held:
                if kind == "buffer":
                    item.release()
        except BaseException as exc:   # pragma: no cover - reported below
            errors.append(f"thread {tid}: {exc!r}")

    def watcher():
        k = 0
        while not done.is_set():
            r = pool.retained_bytes
            if r > pool.max_bytes:
                budget_breaches.append(r)
            k += 1
            if k % 500 == 0:
                pool.trim(BUDGET // 2)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    w = threading.Thread(target=watcher)
    w.start()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    done.set()
    w.join()
    assert not errors, errors[:5]
    assert not budget_breaches
    s = pool.stats()
    assert all(c["out"] == 0 for c in s["classes"].values()) and s["oversize_out"] == 0
    assert s["retained_bytes"] == sum(size * c["cached"] for size, c in s["classes"].items())
    assert s["peak_bytes"] <= BUDGET
    assert s["hits"] > 0
    pool.trim()
    assert pool.stats()["blocks"] == 0 and pool.retained_bytes == 0


def test_threads(rng):
    hammer(ArrayPool(max_bytes=BUDGET), THREADS, OPS, rng.randrange(1 << 30))


def test_threads_poison_pool(rng):
    """clear="poison" under threads: no write after release is ever seen."""
    hammer(ArrayPool(max_bytes=BUDGET, clear="poison"), 4, 1000, rng.randrange(1 << 30))


def test_arrays_dying_in_other_threads():
    """Arrays made in one thread and dropped in another give their blocks back."""
    pool = ArrayPool()
    made = [pool.empty(1000) for _ in range(200)]
    ts = [threading.Thread(target=lambda part=made[i::4]: part.clear()) for i in range(4)]
    del made
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sum(c["out"] for c in pool.stats()["classes"].values()) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_with_arrays_out():
    """A child forked while arrays are out keeps its copy of the cache: its
    arrays die into its own cache, new ones work; the parent is untouched."""
    import warnings
    pool = ArrayPool()
    held = [pool.empty(n, np.uint8) for n in (100, 5000, 1 << 20)]
    held[0][:] = 42
    del held[1]                        # one block cached before the fork
    with warnings.catch_warnings():    # 3.12+: fork() with threads warns
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:                       # the child: report through the exit code
        code = 0
        try:
            assert held[0][0] == 42
            held.clear()
            s = pool.stats()
            assert sum(c["out"] for c in s["classes"].values()) == 0
            a = pool.empty(5000, np.uint8)        # the block cached before fork
            assert pool.stats()["hits"] == 1
            del a
            pool.trim()
            assert pool.stats()["blocks"] == 0
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    s = pool.stats()
    assert sum(c["out"] for c in s["classes"].values()) == 2 and s["hits"] == 0
    held.clear()
    assert pool.stats()["blocks"] == 3
