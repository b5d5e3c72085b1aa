"""Races with threads: close() landing at a random moment under threads that
acquire and release, and a discarded object's slot, which must not be
refilled before destroy() has run (capacity bounds live objects)."""
import random
import threading
import time

import pytest

from pool_ext import BufferPool, ObjectPool, PoolClosed, PoolError, PoolExhausted


# ---- close() racing acquires and releases --------------------------------------

def _close_while_working(pool, work, rng, nthreads=6):
    """Runs work(random.Random) in nthreads threads until the pool is closed
    under them at a random moment; fails on a hang or on any error but the
    PoolClosed that ends each worker."""
    errors = []
    start = threading.Barrier(nthreads + 1)

    def worker(seed):
        start.wait()
        try:
            work(random.Random(seed))
        except PoolClosed:
            return
        except BaseException as e:       # anything else is a failure
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(rng.random(),))
               for _ in range(nthreads)]
    for t in threads:
        t.start()
    start.wait()
    time.sleep(rng.uniform(0, 0.01))
    pool.close()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads), "hang after close()"
    assert not errors, errors


@pytest.mark.parametrize("hooks", [False, True])
def test_close_races_acquires_and_releases(rng, hooks):
    """Each round: 6 threads churn on a small pool, close() lands at a random
    moment.  No crash, no hang, every object destroyed exactly once (all are
    released by the end), the counters balance."""
    rounds = 40
    for rnd in range(rounds):
        created, destroyed = [], []
        lock = threading.Lock()

        def factory():
            o = object.__new__(type("Obj", (), {}))
            with lock:
                created.append(o)
            return o

        def destroy(o):
            with lock:
                destroyed.append(id(o))

        kw = {}
        if hooks:
            kw = dict(reset=lambda o: None, validate=lambda o: rng_local.random() > 0.1)
        rng_local = random.Random(rng.random())
        capacity = rng.choice([1, 2, 3, 7])
        pool = ObjectPool(factory, capacity, destroy=destroy, **kw)

        def work(r):
            while True:
                try:
                    op = r.random()
                    if op < 0.4:
                        o = pool.acquire(timeout=r.choice([0, 0.001, 0.01, None]))
                        pool.release(o)
                    elif op < 0.7:
                        with pool.lease(timeout=0.005):
                            pass
                    else:
                        o = pool.try_acquire()
                        if o is not None:
                            pool.release(o)
                except PoolExhausted:
                    pass

        _close_while_working(pool, work, rng)
        s = pool.stats()
        assert s["in_use"] == 0 and s["waiting"] == 0, s
        assert s["acquires"] == s["releases"], s
        assert len(destroyed) == len(set(destroyed)), "an object destroyed twice"
        assert sorted(destroyed) == sorted(map(id, created)), "an object never destroyed"
        assert s["creations"] == s["destructions"] == len(created) and s["size"] == 0, s
        assert len(created) <= capacity * (1 + s["acquires"])  # sanity


def test_bufferpool_close_races_acquires_and_releases(rng):
    for rnd in range(40):
        bufs = BufferPool(64, rng.choice([1, 2, 7]))

        def work(r):
            while True:
                try:
                    with bufs.acquire(timeout=r.choice([0, 0.001, None])) as b:
                        memoryview(b)[0] = 1
                except PoolExhausted:
                    pass

        _close_while_working(bufs, work, rng)
        s = bufs.stats()
        assert s["in_use"] == 0 and s["waiting"] == 0 and s["acquires"] == s["releases"], s


# ---- capacity bounds objects until they are destroyed ----------------------------


@pytest.mark.parametrize("why", ["validate_false", "reset_raises"])
def test_discarded_object_is_destroyed_before_its_slot_is_refilled(why):
    alive = set()

    class Conn:
        def __init__(self):
            alive.add(self)

    in_destroy, proceed = threading.Event(), threading.Event()

    def destroy(c):
        in_destroy.set()
        proceed.wait(10)        # a slow close(), with the GIL released
        alive.discard(c)

    def reset(c):
        if why == "reset_raises":
            raise OSError("connection broken")

    pool = ObjectPool(Conn, 1, reset=reset, validate=lambda c: why != "validate_false",
                      destroy=destroy)
    a = pool.acquire()

    def release():
        try:
            pool.release(a)
        except OSError:
            pass

    t = threading.Thread(target=release)
    t.start()
    try:
        assert in_destroy.wait(10)
        try:
            b = pool.acquire(timeout=0)
        except PoolExhausted:
            b = None
        # either the slot is not free yet, or the old object is gone already
        assert len(alive) <= pool.capacity, (
            f"{len(alive)} objects alive with capacity {pool.capacity}")
    finally:
        proceed.set()
        t.join(10)
    if b is not None:
        pool.release(b)
    assert pool.in_use == 0


# ---- holders() racing BufferPool arrays ------------------------------------------

def test_what_holders_shows_never_frees_an_array_s_buffer(np):
    # A tracking pool's array is in holders() as its private PooledBuffer
    # from the hand-out until the array replaces it there.  A thread that
    # releases whatever holders() shows, and writes into what it acquires
    # next, must never touch a live array's memory: such a release is
    # deferred until the array dies (the base exports the buffer).
    bufs = BufferPool(64, 4, track=True)
    stop = threading.Event()
    errors = []

    def meddler():
        while not stop.is_set():
            for h in bufs.holders():
                try:
                    bufs.release(h.obj)
                except (PoolError, ValueError):
                    pass
            buf = bufs.try_acquire()
            if buf is not None:
                memoryview(buf)[:] = b"\xff" * 64
                buf.release()

    def user(k):
        try:
            for _ in range(500):
                arr = bufs.zeros(64, np.uint8, timeout=10)
                arr[:] = k
                time.sleep(0)
                if not (arr == k).all():
                    errors.append(f"array {k} overwritten")
                    return
                del arr
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=meddler)] + [
        threading.Thread(target=user, args=(k,)) for k in (1, 2, 3)]
    for t in threads[1:]:
        t.start()
    threads[0].start()
    for t in threads[1:]:
        t.join(120)
    stop.set()
    threads[0].join(30)
    assert errors == [] and bufs.in_use == 0 and bufs.holders() == []
