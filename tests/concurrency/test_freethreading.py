"""Pools hammered from many threads at once; the free-threaded build's contract.

Every test here starts its threads together (threading.Barrier), keeps the
pools smaller than the number of threads so that acquirers wait and are woken,
and checks from the outside that the pool never hands one object or buffer to
two threads at once, loses nothing and counts every operation.

On a GIL build these tests check the waiting and waking paths under
contention; on a free-threaded build (3.14t, 3.15t) they run the core's real
atomics with threads that really run at once.  They are themselves thread-safe
(no shared fixtures, no monkeypatching, no warning capture), so they can also
be run under pytest-run-parallel:

    pytest tests/test_freethreading.py --parallel-threads=4
"""
import os
import subprocess
import sys
import sysconfig
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pool_ext import BufferPool, ObjectPool, PoolExhausted

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

THREADS = 8
ROUNDS = 2000           # per thread and per kind of call; the file takes ~3 s here
TIMEOUT = 60.0          # a blocked acquire that long means a lost wake-up


class Token:
    """An ObjectPool object that remembers who holds it."""

    __slots__ = ("holder", "uses")

    def __init__(self):
        self.holder = None
        self.uses = 0


class Ledger:
    """Which objects are out, kept by the test (one lock, outside the pool).

    take() runs after acquire returned and give() before release is called,
    so a correct pool can never make take() see an object that is still out.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._out = {}
        self.errors = []

    def take(self, key, who):
        with self._lock:
            other = self._out.get(key)
            if other is not None:
                self.errors.append(f"{key:#x} handed to thread {who} while thread {other} holds it")
            self._out[key] = who

    def give(self, key, who):
        with self._lock:
            if self._out.get(key) != who:
                self.errors.append(f"{key:#x} released by thread {who}, held by {self._out.get(key)}")
            self._out.pop(key, None)

    @property
    def out(self):
        with self._lock:
            return len(self._out)


def _run_threads(n, body):
    """Runs body(index, barrier) in n threads started together; re-raises."""
    barrier = threading.Barrier(n, timeout=TIMEOUT)
    with ThreadPoolExecutor(max_workers=n) as ex:
        futures = [ex.submit(body, i, barrier) for i in range(n)]
        return [f.result(timeout=TIMEOUT * 2) for f in futures]


# ---- ObjectPool ------------------------------------------------------------

def _use_token(tok, who, ledger, pause=False):
    ledger.take(id(tok), who)
    # A second holder would overwrite holder between these two lines.
    tok.holder = who
    tok.uses += 1
    if pause:
        time.sleep(1e-6)  # let others run (and find the pool empty) while held
    if tok.holder != who:
        ledger.errors.append(f"token {id(tok):#x}: thread {tok.holder} wrote while {who} held it")
    ledger.give(id(tok), who)
    tok.holder = None


@pytest.mark.parametrize("capacity", [1, 3, THREADS])
def test_objectpool_threads_never_share_an_object(capacity):
    pool = ObjectPool(Token, capacity)
    ledger = Ledger()

    def body(who, barrier):
        done = 0
        barrier.wait()
        for r in range(ROUNDS):
            tok = pool.acquire(timeout=TIMEOUT)
            _use_token(tok, who, ledger, pause=r % 16 == 0)
            pool.release(tok)
            done += 1
            with pool.lease(timeout=TIMEOUT) as tok:
                _use_token(tok, who, ledger, pause=r % 16 == 8)
            done += 1
            tok = pool.try_acquire()
            if tok is not None:
                _use_token(tok, who, ledger)
                pool.release(tok)
                done += 1
        return done

    acquired = sum(_run_threads(THREADS, body))
    assert ledger.errors == []
    assert ledger.out == 0
    s = pool.stats()
    assert pool.in_use == 0 and s["in_use"] == 0
    assert s["acquires"] == s["releases"] == acquired
    assert pool.size <= capacity and s["creations"] == pool.size
    assert pool.available == capacity
    pool.close()


def test_objectpool_acquire_timeouts_under_contention():
    # One object, many threads using only timeouts: every call either gets
    # the object or raises PoolExhausted, and the counts add up.
    pool = ObjectPool(Token, 1)
    ledger = Ledger()

    def body(who, barrier):
        got = missed = 0
        barrier.wait()
        for _ in range(ROUNDS // 2):
            try:
                tok = pool.acquire(timeout=0.0005)
            except PoolExhausted:
                missed += 1
                continue
            _use_token(tok, who, ledger)
            pool.release(tok)
            got += 1
        return got, missed

    results = _run_threads(THREADS, body)
    got = sum(g for g, _ in results)
    missed = sum(m for _, m in results)
    assert ledger.errors == []
    s = pool.stats()
    assert s["acquires"] == s["releases"] == got
    assert got + missed == THREADS * (ROUNDS // 2)
    assert s["timeouts"] == missed
    assert pool.in_use == 0 and s["waiting"] == 0


def test_objectpool_release_from_another_thread():
    # Objects acquired in one thread and released in another (a hand-off
    # queue), with both sides running at once.
    pool = ObjectPool(Token, 4)
    handoff = []
    cond = threading.Condition()
    n_items = THREADS // 2 * ROUNDS
    consumed = [0]

    def body(who, barrier):
        barrier.wait()
        if who % 2 == 0:                      # producers: acquire, hand off
            for _ in range(ROUNDS):
                tok = pool.acquire(timeout=TIMEOUT)
                with cond:
                    handoff.append(tok)
                    cond.notify()
            return 0
        released = 0                           # consumers: release
        while True:
            with cond:
                while not handoff:
                    if consumed[0] >= n_items:
                        return released
                    cond.wait(0.01)
                tok = handoff.pop()
                consumed[0] += 1
            pool.release(tok)
            released += 1

    released = sum(_run_threads(THREADS, body))
    assert released == n_items
    s = pool.stats()
    assert s["acquires"] == s["releases"] == n_items
    assert pool.in_use == 0


# ---- BufferPool ------------------------------------------------------------

BUF_SIZE = 256


def _stamp_and_check(buf, who, r, errors):
    """Writes a pattern owned by (who, r) over the whole buffer, then reads it
    back: a buffer handed to two threads would show the other's pattern."""
    pattern = bytes([(who * 31 + r) & 0xFF]) * BUF_SIZE
    with memoryview(buf) as view:
        view[:] = pattern
        if r % 16 == 0:
            time.sleep(1e-6)  # let others run while this buffer is held
        if view.tobytes() != pattern:
            errors.append(f"thread {who} round {r}: buffer written by someone else")


def test_bufferpool_threads_never_share_memory():
    bufs = BufferPool(BUF_SIZE, 3)
    errors = []

    def body(who, barrier):
        done = 0
        barrier.wait()
        for r in range(ROUNDS):
            buf = bufs.acquire(timeout=TIMEOUT)
            _stamp_and_check(buf, who, r, errors)
            buf.release()
            done += 1
            with bufs.lease(timeout=TIMEOUT) as buf:
                _stamp_and_check(buf, who, r, errors)
            done += 1
            with bufs.acquire(timeout=TIMEOUT) as buf:      # PooledBuffer as context
                _stamp_and_check(buf, who, r, errors)
            done += 1
            buf = bufs.try_acquire()
            if buf is not None:
                _stamp_and_check(buf, who, r, errors)
                bufs.release(buf)
                done += 1
        return done

    acquired = sum(_run_threads(THREADS, body))
    assert errors == []
    s = bufs.stats()
    assert bufs.in_use == 0 and s["in_use"] == 0
    assert s["acquires"] == s["releases"] == acquired
    assert bufs.available == bufs.capacity
    bufs.close()


def test_bufferpool_released_handles_stay_dead_across_threads():
    # A handle released in one thread is unusable everywhere, even while
    # other threads acquire the same slot again.
    bufs = BufferPool(64, 2)
    dead = []
    lock = threading.Lock()

    def body(who, barrier):
        barrier.wait()
        bad = 0
        for r in range(ROUNDS // 2):
            buf = bufs.acquire(timeout=TIMEOUT)
            buf.release()
            with lock:
                dead.append(buf)
                old = dead[(who * 7 + r) % len(dead)]
            with pytest.raises(ValueError):
                memoryview(old)
            if not old.released:
                bad += 1
        return bad

    assert sum(_run_threads(THREADS, body)) == 0
    s = bufs.stats()
    assert s["acquires"] == s["releases"] == THREADS * (ROUNDS // 2)
    assert bufs.in_use == 0


def test_reading_buf_pool_while_another_thread_releases_the_last_reference():
    # The handle may hold the only reference to its pool.  buf.pool, read
    # while another thread releases it, returns the pool or None, never a
    # reference to a pool freed under the reader (free-threaded builds keep
    # the handle's reference until the handle dies).
    errors = []
    for _ in range(300):
        buf = BufferPool(64, 1).acquire()
        start = threading.Barrier(2)

        def read():
            start.wait()
            for _ in range(200):
                p = buf.pool
                if p is not None and p.capacity != 1:
                    errors.append(p)

        t = threading.Thread(target=read)
        t.start()
        start.wait()
        buf.release()
        t.join()
        assert buf.pool is None
    assert errors == []


def test_when_a_released_handle_lets_go_of_its_pool():
    # The stress test above cannot make the race happen on demand; this
    # checks the rule that prevents it.  Free-threaded builds (no handle
    # reuse): a released handle keeps its pool reference until it dies, so
    # a reader of buf.pool in another thread can never see it freed.  GIL
    # builds (handles reused, reads atomic): it lets go at release, so a
    # cached handle never keeps its pool alive.
    pool = BufferPool(64, 1)
    buf = pool.acquire()
    held = sys.getrefcount(pool)
    buf.release()
    after_release = sys.getrefcount(pool)
    del buf
    after_death = sys.getrefcount(pool)
    if FREE_THREADED:
        assert after_release == held and after_death == held - 1
    else:
        assert after_release == held - 1 and after_death == held - 1


# ---- the free-threaded build itself ----------------------------------------

@pytest.mark.skipif(not FREE_THREADED,
                    reason="needs a free-threaded CPython (Py_GIL_DISABLED, e.g. 3.14t); "
                           "this interpreter has the GIL")
def test_import_keeps_the_gil_disabled():
    # In a fresh interpreter, so that no other extension imported by the
    # test session (numpy, ...) can be the one that turned the GIL on.
    # PYTHON_GIL is dropped: PYTHON_GIL=0 would hide a missing declaration.
    # -P: the current directory (maybe a source checkout) is not on sys.path,
    # so this imports the same installed pool_ext as the tests.
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    code = ("import sys, pool_ext; "
            "print(sys._is_gil_enabled()); print(pool_ext.ATOMICS)")
    proc = subprocess.run([sys.executable, "-P", "-W", "error::RuntimeWarning", "-c", code],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    gil, atomics = proc.stdout.splitlines()
    assert gil == "False", "importing pool_ext re-enabled the GIL"
    assert atomics.startswith("atomic"), atomics

