"""Who holds what: track=True / POOL_EXT_TRACK=1, holders(), PoolExhausted
naming the longest holder, leak_timeout and PoolLeakWarning, the acquiring
stack in the warnings of a dropped lease or PooledBuffer, name= and repr().
"""
import gc
import os
import threading
import time
import traceback
import warnings

import pytest

from helpers import Thing, line_of, run_script
from pool_ext import (BufferPool, Holder, ObjectPool, PoolError, PoolExhausted,
                      PoolLeakWarning, PooledBuffer)


# ---- holders() -----------------------------------------------------------------------


@pytest.mark.thread_unsafe(reason="expects the holder's thread to be the main thread, "
                                  "which runs the test only when one thread does")
def test_holders_names_the_object_thread_time_and_acquiring_line():
    pool = ObjectPool(Thing, 3, track=True)
    a = pool.acquire()   # first-acquire
    time.sleep(0.02)
    got = []
    t = threading.Thread(target=lambda: got.append(pool.acquire()), name="worker-7")  # second
    t.start()
    t.join()
    holders = pool.holders()
    assert [type(h) for h in holders] == [Holder, Holder]
    first, second = holders                      # oldest first
    assert first.obj is a and first.thread_name == "MainThread"
    assert second.obj is got[0] and second.thread_name == "worker-7"
    assert first.held_seconds > second.held_seconds > 0
    assert first.held_seconds >= 0.02
    assert isinstance(first.stack, traceback.StackSummary)
    where = first.stack[-1]                      # innermost: the acquiring line
    assert where.filename == __file__ and where.lineno == line_of("# first-acquire")
    assert where.name == "test_holders_names_the_object_thread_time_and_acquiring_line"
    assert where.line.endswith("# first-acquire")
    assert second.stack[-1].name == "<lambda>"
    assert len(first.stack) <= 16
    pool.release(a)
    assert [h.obj for h in pool.holders()] == got
    pool.release(got[0])
    assert pool.holders() == []


def test_holders_covers_every_way_to_acquire():
    pool = ObjectPool(Thing, 4, track=True)
    a = pool.acquire(timeout=1)
    b = pool.try_acquire()
    with pool.lease() as c:
        assert [h.obj for h in pool.holders()] == [a, b, c]
        assert len(pool.holders()) == pool.in_use == 3
    pool.release(a)
    pool.discard(b)
    assert pool.holders() == []


def test_the_stack_is_cut_at_16_frames():
    pool = ObjectPool(Thing, 1, track=True)

    def deep(n):
        return deep(n - 1) if n else pool.acquire()

    obj = deep(40)
    (h,) = pool.holders()
    assert len(h.stack) == 16 and all(f.name == "deep" for f in h.stack)
    pool.release(obj)


def test_holders_needs_tracking(untracked):
    with pytest.raises(PoolError, match="track=True"):
        ObjectPool(Thing, 1).holders()
    with pytest.raises(PoolError, match="POOL_EXT_TRACK"):
        BufferPool(8, 1).holders()


def test_pool_ext_track_in_the_environment_tracks_every_pool(monkeypatch):
    monkeypatch.setenv("POOL_EXT_TRACK", "1")
    pool, bufs = ObjectPool(Thing, 1), BufferPool(8, 1)
    assert pool.track and bufs.track
    assert pool.holders() == [] and bufs.holders() == []
    monkeypatch.setenv("POOL_EXT_TRACK", "0")
    assert not ObjectPool(Thing, 1).track


def test_bufferpool_holders_report_the_buffer():
    bufs = BufferPool(64, 2, track=True)
    buf = bufs.acquire()
    (h,) = bufs.holders()
    assert h.obj is buf and isinstance(h.obj, PooledBuffer)
    view = memoryview(buf)
    buf.release()                # deferred by the view: still counted, still listed
    assert bufs.in_use == 1 and [x.obj for x in bufs.holders()] == [buf]
    view.release()
    assert bufs.holders() == [] and bufs.in_use == 0
    with bufs.lease() as b2:
        assert [x.obj for x in bufs.holders()] == [b2]
    assert bufs.stats()["holds"] == 2


@pytest.mark.parametrize("make", ["empty", "zeros"])
def test_bufferpool_holders_report_an_array_as_the_array_and_cannot_free_it(np, make):
    # empty()/zeros() hold their buffer privately, under the array: holders()
    # shows the array itself, and nothing it hands out releases the slot
    # while the array lives (the next acquire would write into it).
    bufs = BufferPool(64, 1, track=True)
    arr = getattr(bufs, make)(8, np.uint8)
    arr[:] = 7
    (h,) = bufs.holders()
    assert h.obj is arr and h.stack[-1].lineno == line_of("getattr(bufs, make)(8")
    with pytest.raises(PoolError, match="array"):
        bufs.release(h.obj)
    with pytest.raises(AttributeError):
        h.obj.release()
    assert bufs.try_acquire() is None and bufs.in_use == 1
    assert (arr == 7).all()
    del h, arr
    gc.collect()
    assert bufs.holders() == [] and bufs.in_use == 0 and bufs.stats()["holds"] == 1
    with bufs.acquire() as buf:
        assert [x.obj for x in bufs.holders()] == [buf]


def test_bufferpool_array_holders_under_pool_ext_track(np, tmp_path):
    proc = run_script(tmp_path, """
        import numpy as np
        from pool_ext import BufferPool, PoolError
        bufs = BufferPool(64, 1)
        arr = bufs.zeros(4, np.int32)
        (h,) = bufs.holders()
        assert h.obj is arr, h
        try:
            bufs.release(h.obj)
        except PoolError:
            pass
        assert bufs.try_acquire() is None
        print("ok")
        """, env={**os.environ, "POOL_EXT_TRACK": "1"})
    assert proc.returncode == 0 and proc.stdout == "ok\n"


def test_holders_while_threads_churn():
    pool = ObjectPool(Thing, 4, track=True)
    bufs = BufferPool(16, 4, track=True)
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            pool.release(pool.acquire())
            bufs.acquire().release()

    threads = [threading.Thread(target=churn) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(300):
            for h in pool.holders() + bufs.holders():
                assert h.held_seconds >= 0 and h.thread_name.startswith("Thread-")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert pool.holders() == [] and bufs.holders() == []


# ---- PoolExhausted names the longest holder ---------------------------------------------


@pytest.mark.thread_unsafe(reason="expects the holder's thread to be the main thread, "
                                  "which runs the test only when one thread does")
def test_pool_exhausted_names_the_longest_holder_and_where():
    pool = ObjectPool(Thing, 2, track=True, name="db")
    first = pool.acquire()   # the-longest
    time.sleep(0.01)
    second = pool.acquire()
    with pytest.raises(PoolExhausted) as info:
        pool.acquire(timeout=0.01)
    message = str(info.value)
    assert "pool 'db'" in message and "thread 'MainThread'" in message
    assert f'File "{__file__}", line {line_of("# the-longest")}' in message
    with pytest.raises(PoolExhausted, match="held longest"):
        pool.acquire(timeout=0)
    pool.release(first)
    pool.release(second)


def test_without_tracking_pool_exhausted_suggests_tracking(untracked):
    """A dropped, never released object is a lost slot whose only symptom
    is PoolExhausted: without tracking, its message says how to find it."""
    pool = ObjectPool(Thing, 1)
    pool.acquire()    # dropped: its slot is lost
    with pytest.raises(PoolExhausted) as info:
        pool.acquire(timeout=0.01)
    assert str(info.value) == (
        "no free slot among 1 within 0.01 s; an object dropped without release() keeps "
        "its slot; track=True (or POOL_EXT_TRACK=1) names who holds each slot")
    bufs = BufferPool(8, 1)   # a dropped buffer frees its slot: only the hint
    held = bufs.acquire()
    with pytest.raises(PoolExhausted, match=r"^no free slot among 1; track=True "
                                            r"\(or POOL_EXT_TRACK=1\) names who"):
        bufs.acquire(timeout=0)
    held.release()


# ---- leak_timeout -----------------------------------------------------------------------


def test_leak_timeout_warns_once_per_hand_out_with_the_acquiring_line():
    pool = ObjectPool(Thing, 2, leak_timeout=0.05, name="db")
    assert pool.track and pool.leak_timeout == 0.05
    leaked = pool.acquire()   # forgotten-here
    time.sleep(0.08)
    with pytest.warns(PoolLeakWarning) as record:
        pool.stats()
    (w,) = record
    message = str(w.message)
    assert "pool 'db'" in message and "leak_timeout=0.05 s" in message
    assert f'line {line_of("# forgotten-here")}' in message and "forgotten-here" in message
    assert pool.stats()["leaks"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pool.stats()              # once per hand-out: not again
        pool.holders()
    pool.release(leaked)
    again = pool.acquire()        # a new hand-out may warn again
    time.sleep(0.08)
    with pytest.warns(PoolLeakWarning):
        pool.holders()
    pool.release(again)


def test_leak_warnings_come_when_a_caller_has_to_wait():
    pool = ObjectPool(Thing, 1, leak_timeout=0.02)
    held = pool.acquire()
    time.sleep(0.05)
    assert pool.try_acquire() is None            # no wait: no check
    with pytest.warns(PoolLeakWarning):
        with pytest.raises(PoolExhausted):
            pool.acquire(timeout=0.01)
    pool.release(held)


def test_a_leak_warning_made_an_error_loses_nothing():
    pool = ObjectPool(Thing, 1, leak_timeout=0.01)
    held = pool.acquire()
    time.sleep(0.03)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PoolLeakWarning)
        with pytest.raises(PoolLeakWarning):
            pool.acquire(timeout=0.01)
    assert pool.in_use == 1 and pool.stats()["waiting"] == 0
    pool.release(held)
    assert pool.in_use == 0


def test_bufferpool_leak_timeout():
    bufs = BufferPool(8, 1, leak_timeout=0.01, name="io")
    buf = bufs.acquire()
    time.sleep(0.03)
    with pytest.warns(PoolLeakWarning, match="pool 'io'"):
        bufs.holders()
    buf.release()


def test_pool_leak_warning_is_a_resource_warning_shown_by_default(tmp_path):
    assert issubclass(PoolLeakWarning, ResourceWarning)
    proc = run_script(tmp_path, """
        import time
        from pool_ext import ObjectPool
        pool = ObjectPool(object, 1, leak_timeout=0.01)
        obj = pool.acquire()
        time.sleep(0.03)
        pool.stats()
    """)
    assert proc.returncode == 0
    assert "PoolLeakWarning" in proc.stderr and "obj = pool.acquire()" in proc.stderr
    proc = run_script(tmp_path, """
        import time, warnings
        warnings.simplefilter("ignore")   # the user's filters decide
        from pool_ext import ObjectPool
        pool = ObjectPool(object, 1, leak_timeout=0.01)
        obj = pool.acquire()
        time.sleep(0.03)
        pool.stats()
        print("leaks", pool.stats()["leaks"])
    """)
    assert proc.returncode == 0 and "leaks 1" in proc.stdout
    assert "PoolLeakWarning" not in proc.stderr


# ---- dropped leases and buffers warn with the stack ----------------------------------------


def test_a_dropped_lease_warns_with_the_acquiring_stack():
    pool = ObjectPool(Thing, 1, track=True)
    lease = pool.lease()
    lease.__enter__()   # entered-here
    with pytest.warns(ResourceWarning, match="entered-here"):
        del lease
        gc.collect()
    assert pool.in_use == 0 and pool.holders() == []


def test_a_dropped_pooled_buffer_warns_with_the_acquiring_stack():
    bufs = BufferPool(8, 1, track=True)
    buf = bufs.acquire()   # dropped-here
    with pytest.warns(ResourceWarning, match="dropped-here"):
        del buf
        gc.collect()
    assert bufs.in_use == 0 and bufs.holders() == []


def test_untracked_dropped_buffer_warns_as_before(untracked):
    bufs = BufferPool(8, 1)
    buf = bufs.acquire()
    with pytest.warns(ResourceWarning) as record:
        del buf
        gc.collect()
    assert "acquired at" not in str(record[0].message)


# ---- name= and repr() ----------------------------------------------------------------------


def test_repr_shows_name_capacity_in_use_and_idle():
    pool = ObjectPool(Thing, 3, name="db", prefill=2)
    held = pool.acquire()
    assert repr(pool).startswith("<ObjectPool 'db' open capacity=3 in_use=1 idle=1 size=2 ")
    pool.release(held)
    pool.close()
    assert repr(pool).startswith("<ObjectPool 'db' closed capacity=3 in_use=0 idle=0 ")
    bufs = BufferPool(16, 4, name="io")
    b = bufs.acquire()
    assert repr(bufs) == "<BufferPool 'io' open capacity=4 in_use=1 idle=3 buffer_size=16>"
    b.release()
    assert repr(BufferPool(16, 2)) == "<BufferPool open capacity=2 in_use=0 idle=2 buffer_size=16>"


def test_the_name_is_in_messages_and_warnings():
    pool = ObjectPool(Thing, 1, name="db")
    assert pool.name == "db" and ObjectPool(Thing, 1).name is None
    held = pool.acquire()
    with pytest.raises(PoolExhausted, match="'db'"):
        pool.acquire(timeout=0)
    with pytest.raises(PoolError, match="was not handed out by this pool 'db'"):
        pool.release(Thing())
    pool.release(held)
    pool.close()
    with pytest.raises(PoolError, match="closed pool 'db'"):
        pool.acquire()
    with pytest.raises(PoolError, match="closed pool 'db'"):
        pool.lease()
    bufs = BufferPool(8, 1, name="io")
    buf = bufs.acquire()
    with pytest.warns(ResourceWarning, match="'io'"):
        del buf
        gc.collect()
