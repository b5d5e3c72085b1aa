"""stats(): wait and hold times, the health counters, stats(reset=True)."""
import threading
import time

import pytest

from helpers import Thing, wait_for_waiters
from pool_ext import BufferPool, ObjectPool, PoolExhausted

COUNTERS = ["acquires", "releases", "creations", "destructions", "waits", "timeouts",
            "wait_ns_total", "wait_ns_max", "holds", "hold_ns_total", "hold_ns_max", "leaks"]
GAUGES = ["waiting", "capacity", "size", "in_use", "available"]


def test_the_keys_of_each_pool():
    assert list(ObjectPool(Thing, 1).stats()) == (
        COUNTERS + ["checks_failed", "expired", "discarded"] + GAUGES + ["idle"])
    assert list(BufferPool(8, 1).stats()) == COUNTERS + GAUGES


def test_wait_time_is_measured_only_when_a_caller_sleeps():
    pool = ObjectPool(Thing, 1)
    for _ in range(100):
        pool.release(pool.acquire())
    s = pool.stats()
    assert s["waits"] == 0 and s["wait_ns_total"] == 0 and s["wait_ns_max"] == 0
    held = pool.acquire()
    with pytest.raises(PoolExhausted):
        pool.acquire(timeout=0)            # does not sleep: not timed
    assert pool.stats()["wait_ns_total"] == 0
    with pytest.raises(PoolExhausted):
        pool.acquire(timeout=0.05)
    got = []
    t = threading.Thread(target=lambda: got.append(pool.acquire(timeout=10)))
    t.start()
    assert wait_for_waiters(pool)
    time.sleep(0.1)
    pool.release(held)
    t.join()
    s = pool.stats()
    assert s["waits"] == 2
    assert 0.1e9 <= s["wait_ns_max"] < 5e9
    assert s["wait_ns_total"] >= s["wait_ns_max"] + 0.05e9
    pool.release(got[0])


def test_hold_time_needs_tracking(untracked):
    plain = ObjectPool(Thing, 1)
    plain.release(plain.acquire())
    assert plain.stats()["holds"] == 0 and plain.stats()["hold_ns_total"] == 0
    pool = ObjectPool(Thing, 2, track=True)
    a = pool.acquire()
    time.sleep(0.05)
    pool.release(a)
    b = pool.acquire()
    pool.discard(b)
    s = pool.stats()
    assert s["holds"] == 2
    assert 0.05e9 <= s["hold_ns_max"] <= s["hold_ns_total"] < 5e9
    bufs = BufferPool(8, 1, track=True)
    with bufs.acquire():
        time.sleep(0.02)
    assert bufs.stats()["holds"] == 1 and bufs.stats()["hold_ns_max"] >= 0.02e9


def test_health_counters():
    pool = ObjectPool(Thing, 3, check=lambda t: not t.dirty, max_idle=0.3)
    a, b, c = pool.acquire(), pool.acquire(), pool.acquire()
    a.dirty = True
    pool.release(a)
    pool.discard(b)
    pool.release(c)
    time.sleep(0.35)
    assert pool.evict() == 2              # a and c idle too long
    d = pool.acquire()
    d.dirty = True
    pool.release(d)
    pool.acquire()                        # d fails its check
    s = pool.stats()
    assert (s["checks_failed"], s["expired"], s["discarded"]) == (1, 2, 1)


def test_stats_reset_returns_the_counters_and_zeroes_them_not_the_gauges():
    pool = ObjectPool(Thing, 3, track=True)
    held = [pool.acquire() for _ in range(3)]
    pool.release(held.pop())
    held.append(pool.acquire())
    with pytest.raises(PoolExhausted):
        pool.acquire(timeout=0)
    first = pool.stats(reset=True)
    assert first["acquires"] == 4 and first["releases"] == 1 and first["timeouts"] == 1
    assert first["holds"] == 1 and first["hold_ns_max"] > 0
    after = pool.stats()
    for key in COUNTERS + ["checks_failed", "expired", "discarded"]:
        assert after[key] == 0, key
    for key in GAUGES + ["idle"]:
        assert after[key] == first[key], key
    assert after["in_use"] == 3 and after["size"] == 3
    for obj in held:
        pool.release(obj)
    assert pool.stats()["releases"] == 3 and pool.in_use == 0


def test_concurrent_resets_count_every_event_exactly_once():
    pool = ObjectPool(Thing, 4)
    bufs = BufferPool(8, 4)
    per_thread, threads_n = 5000, 4
    reports = []
    stop = threading.Event()

    def work():
        for _ in range(per_thread):
            pool.release(pool.acquire())
            bufs.acquire().release()

    def reset():
        while not stop.is_set():
            reports.append((pool.stats(reset=True), bufs.stats(reset=True)))

    workers = [threading.Thread(target=work) for _ in range(threads_n)]
    resetters = [threading.Thread(target=reset) for _ in range(2)]
    for t in workers + resetters:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    for t in resetters:
        t.join()
    reports.append((pool.stats(reset=True), bufs.stats(reset=True)))
    total = threads_n * per_thread
    for k in (0, 1):
        assert sum(r[k]["acquires"] for r in reports) == total
        assert sum(r[k]["releases"] for r in reports) == total
    assert pool.in_use == 0 and bufs.in_use == 0
