"""SharedBufferPool under threads of one process (free-threaded builds run
them in parallel): one holder per block, one winner per release race, no
slot lost.  Across processes: test_shared_processes.py."""
import sys
import threading

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("SharedBufferPool is Linux only", allow_module_level=True)

from pool_ext import PoolError, SharedBufferPool  # noqa: E402


def _run(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()


def test_threads_never_share_a_block():
    pool = SharedBufferPool(64, 3)
    errors = []
    stop = threading.Event()

    def work(me):
        stamp = me.to_bytes(8, "little")
        try:
            for _ in range(4000):
                buf = pool.acquire(timeout=30)
                view = memoryview(buf)
                view[:8] = stamp
                for _ in range(3):
                    if view[:8] != stamp:
                        errors.append(f"block {buf.index} overwritten under thread {me}")
                view.release()
                buf.release()
                if stop.is_set():
                    return
        except BaseException as exc:    # noqa: BLE001 (reported below)
            errors.append(repr(exc))
            stop.set()

    _run([threading.Thread(target=work, args=(k + 1,)) for k in range(4)])
    assert errors == []
    s = pool.stats()
    assert s["free"] == 3 and s["in_use"] == 0
    assert s["handouts"] == s["releases"] == 16000


def test_release_race_has_one_winner():
    pool = SharedBufferPool(64, 1)
    for _ in range(300):
        buf = pool.acquire(timeout=5)
        before = pool.stats()["releases"]
        barrier = threading.Barrier(4)
        outcomes = []

        def rel():
            barrier.wait()
            try:
                buf.release()
                outcomes.append("ok")
            except PoolError:
                outcomes.append("error")

        _run([threading.Thread(target=rel) for _ in range(4)])
        assert sorted(outcomes) == ["error", "error", "error", "ok"]
        assert pool.stats()["releases"] == before + 1
        assert pool.available == 1


def test_send_races_release_one_wins():
    import pickle
    pool = SharedBufferPool(64, 1)
    for _ in range(200):
        buf = pool.acquire(timeout=5)
        barrier = threading.Barrier(2)
        sent = []

        def send():
            barrier.wait()
            try:
                sent.append(pickle.dumps(buf))
            except (PoolError, ValueError):
                pass

        def rel():
            barrier.wait()
            try:
                buf.release()
            except PoolError:
                pass

        _run([threading.Thread(target=send), threading.Thread(target=rel)])
        if sent:        # the send won: the block is in transit until loaded
            assert pool.stats()["in_transit"] == 1
            pickle.loads(sent[0]).release()
        assert pool.available == 1, pool.stats()


def test_exports_and_release_from_threads():
    pool = SharedBufferPool(64, 2)
    for _ in range(200):
        buf = pool.acquire(timeout=5)
        views = [memoryview(buf) for _ in range(3)]
        barrier = threading.Barrier(4)

        def end(v):
            barrier.wait()
            v.release()

        def rel():
            barrier.wait()
            buf.release()

        _run([threading.Thread(target=end, args=(v,)) for v in views]
             + [threading.Thread(target=rel)])
        assert pool.available == 2, pool.stats()


def test_waiter_gets_the_block_another_thread_drops():
    # Free-threaded CPython queues an object whose last reference another
    # thread drops to the thread that made it: a waiter must run that
    # pending work, or it would wait for a block it holds itself.
    np = pytest.importorskip("numpy")
    pool = SharedBufferPool(4096, 1)
    arr = pool.zeros(16, np.float64)       # made by this thread
    box = [arr]
    del arr

    def drop():
        box.clear()                        # the last reference, in another thread

    t = threading.Timer(0.2, drop)
    t.start()
    try:
        buf = pool.acquire(timeout=10)
    finally:
        t.join()
    buf.release()
    assert pool.available == 1
