"""Faults: Ctrl-C in a wait, fork() with threads, a pool garbage-collected
while its hand-outs are out, close() racing acquires and releases.

Everything that could take the interpreter down runs in a subprocess, so a
crash or hang shows up as a failed test, not as a dead test runner.

Fork semantics observed (and documented in README, "Safety"):
  - the child gets a copy of the pool as it was at fork time;
  - objects idle at fork time are idle in the child and can be acquired;
  - objects the forking thread held can be used and released in the child;
  - slots held by other threads (which do not exist in the child) stay in
    use in the child for ever: its capacity is reduced by that much;
  - the parent is unaffected;
  - the child cannot deadlock on the wait-queue lock: its holders never
    release the GIL (nor reach a safe point) while holding it, and fork()
    runs holding the GIL (free-threaded: after stopping the world).  In
    916e158 the lock was Cython's pymutex, which on 3.13t+ is a PyMutex that
    a thread could hold while parked re-attaching; d553f72 made it a
    spinlock.  test_fork_while_the_wait_queue_is_busy_does_not_deadlock_the_child
    forks 30 times while six threads churn on the queue;
  - threads that were waiting in acquire() at fork time are dropped from the
    child's wait queue, so the child's releases wake the child's own waiters
    (in 916e158 they stayed linked, on the dead threads' stacks, and the
    child crashed once its new threads reused those stacks:
    test_fork_with_a_waiting_thread_then_child_threads_wait).
"""
import gc
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from helpers import run_script, script_command
from pool_ext import BufferPool, ObjectPool, PoolClosed, PoolError, PoolExhausted

HAS_FORK = hasattr(os, "fork") and sys.platform.startswith("linux")


# ---- KeyboardInterrupt ------------------------------------------------------

SIGINT_SCRIPT = """
    import sys, threading, time
    from pool_ext import BufferPool, ObjectPool
    kind, timeout = sys.argv[1], eval(sys.argv[2])
    pool = ObjectPool(object, 2) if kind == "object" else BufferPool(64, 2)
    held = [pool.acquire(), pool.acquire()]
    other = []          # a second waiter, in another thread: must still be served
    t = threading.Thread(target=lambda: other.append(pool.acquire(timeout=30)))
    t.start()
    while pool.stats()["waiting"] < 1:
        time.sleep(0.001)

    def announce():
        while pool.stats()["waiting"] < 2:
            time.sleep(0.001)
        print("READY", flush=True)

    threading.Thread(target=announce).start()
    try:
        pool.acquire(timeout=timeout)       # main thread waits here
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
    else:
        print("NOT INTERRUPTED", flush=True)
        sys.exit(2)
    s = pool.stats()
    assert s["waiting"] == 1, s             # only the other thread still waits
    assert s["in_use"] == 2, s              # the interrupted wait took nothing
    pool.release(held.pop())                # the other waiter gets this one
    t.join(10)
    assert not t.is_alive() and len(other) == 1, "second waiter not served"
    for item in held + other:
        pool.release(item)
    # no slot lost: every slot can be had at once, without waiting
    items = [pool.acquire(timeout=0) for _ in range(2)]
    assert pool.try_acquire() is None
    for item in items:
        pool.release(item)
    s = pool.stats()
    assert s["in_use"] == 0 and s["waiting"] == 0 and s["acquires"] == s["releases"], s
    print("OK", s, flush=True)
"""


@pytest.mark.skipif(os.name != "posix", reason="sends a real SIGINT")
@pytest.mark.parametrize("kind", ["object", "buffer"])
@pytest.mark.parametrize("timeout", ["None", "float('inf')", "30.0"])
def test_sigint_interrupts_a_waiting_acquire_promptly(tmp_path, kind, timeout):
    command = script_command(tmp_path, SIGINT_SCRIPT, kind, timeout, name="sigint.py")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(tmp_path))
    watchdog = threading.Timer(60, proc.kill)   # a hang fails, never blocks the run
    watchdog.start()
    with proc:                               # closes the pipes
        try:
            assert proc.stdout.readline().strip() == "READY"
            time.sleep(0.05)                 # let the main thread settle into its wait
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
            line = proc.stdout.readline().strip()
            elapsed = time.monotonic() - sent
            # not communicate(): it reads the pipe's fd and would miss what
            # readline() already buffered
            out = proc.stdout.read()
            err = proc.stderr.read()
            proc.wait(timeout=30)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print(line, out, err)
    assert line == "INTERRUPTED"
    assert elapsed < 2.0, f"KeyboardInterrupt took {elapsed:.2f} s"
    assert proc.returncode == 0, err
    assert "OK" in out


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
def test_signal_handler_that_does_not_raise_keeps_waiting(tmp_path):
    """A signal whose handler returns normally must not end the wait (nor
    lose the slot released later)."""
    proc = run_script(tmp_path, """
        import os, signal, threading, time
        from pool_ext import ObjectPool
        pool = ObjectPool(object, 1)
        held = pool.acquire()
        seen = []
        signal.signal(signal.SIGUSR1, lambda *a: seen.append(1))
        main = threading.get_ident()

        def poke():
            while pool.stats()["waiting"] < 1:
                time.sleep(0.001)
            for _ in range(3):
                signal.pthread_kill(main, signal.SIGUSR1)
                time.sleep(0.05)
            pool.release(held)

        threading.Thread(target=poke).start()
        got = pool.acquire(timeout=30)
        assert got is held and len(seen) == 3, seen
        pool.release(got)
        s = pool.stats()
        assert s["in_use"] == 0 and s["waiting"] == 0 and s["timeouts"] == 0, s
        print("OK")
    """)
    assert proc.returncode == 0 and "OK" in proc.stdout


# ---- fork -------------------------------------------------------------------

FORK_SCRIPT = """
    import os, sys, threading, time
    from pool_ext import BufferPool, ObjectPool

    destroyed = []
    pool = ObjectPool(object, 6, destroy=lambda o: destroyed.append(id(o)))
    bufs = BufferPool(64, 4)
    every = [pool.acquire() for _ in range(6)]      # all created, then idle
    for o in every:
        pool.release(o)
    mine = pool.acquire()                           # held by the forking thread
    held_ids = {id(mine)}
    my_buf = bufs.acquire()
    memoryview(my_buf)[:4] = b"main"
    go = threading.Event()
    ready = threading.Barrier(4)

    def holder(n):
        o = pool.acquire()                          # held by another thread at fork
        held_ids.add(id(o))
        b = bufs.acquire()
        memoryview(b)[:4] = b"thr%d" % n
        ready.wait()
        go.wait()
        assert bytes(memoryview(b)[:4]) == b"thr%d" % n
        b.release()
        pool.release(o)

    threads = [threading.Thread(target=holder, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    ready.wait()
    before = pool.stats()
    assert before["in_use"] == 4 and bufs.in_use == 4

    pid = os.fork()
    if pid == 0:
        try:
            s = pool.stats()
            # the child's copy: same counters; the 3 threads' slots stay in use
            assert s["in_use"] == 4 and s["size"] == before["size"], s
            got = [pool.acquire(timeout=0) for _ in range(2)]   # capacity 6 - 4 held
            assert pool.try_acquire() is None
            # the objects idle at fork time, not new ones nor the threads' ones
            assert not set(map(id, got)) & held_ids and len(set(map(id, got))) == 2
            assert set(map(id, got)) <= set(map(id, every))
            assert pool.stats()["creations"] == 6
            for o in got:
                pool.release(o)
            pool.release(mine)                        # the forking thread's own object
            assert pool.in_use == 3
            three = [pool.acquire(timeout=0) for _ in range(3)]  # capacity - 3 ghosts
            try:
                pool.acquire(timeout=0.05)            # waits, times out: no deadlock
            except Exception as e:
                assert type(e).__name__ == "PoolExhausted", e
            else:
                raise AssertionError("more than capacity - 3 slots in the child")
            for o in three:
                pool.release(o)
            assert bytes(memoryview(my_buf)[:4]) == b"main"
            my_buf.release()
            b = [bufs.acquire(timeout=0)]            # the slot just released
            assert bufs.try_acquire() is None         # the threads' 3 stay in use
            b[0].release()
            # a thread started in the child can use the pool
            out = []
            t = threading.Thread(target=lambda: out.append(pool.acquire(timeout=5)))
            t.start(); t.join(10)
            assert len(out) == 1
            pool.close()
            print("CHILD OK", pool.stats(), flush=True)
            os._exit(0)
        except BaseException as e:
            import traceback; traceback.print_exc()
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    # the parent is unaffected by whatever the child did
    assert pool.stats() == before, (pool.stats(), before)
    go.set()
    for t in threads:
        t.join(10)
    pool.release(mine)
    assert bytes(memoryview(my_buf)[:4]) == b"main"
    my_buf.release()
    s = pool.stats()
    assert s["in_use"] == 0 and s["acquires"] == s["releases"] and bufs.in_use == 0, s
    assert len([pool.acquire(timeout=0) for _ in range(6)]) == 6
    assert destroyed == []
    print("PARENT OK child status", status, flush=True)
    sys.exit(0 if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else 3)
"""


@pytest.mark.skipif(not HAS_FORK, reason="needs os.fork (Linux)")
def test_fork_while_threads_hold_objects(tmp_path):
    proc = run_script(tmp_path, FORK_SCRIPT)
    assert proc.returncode == 0
    assert "CHILD OK" in proc.stdout and "PARENT OK" in proc.stdout


FORK_MUTEX_SCRIPT = """
    import os, sys, threading, time
    from pool_ext import ObjectPool
    # capacity 1, six threads acquiring with short timeouts: the wait queue
    # and its mutex are busy all the time; fork from the main thread 30 times.
    pool = ObjectPool(object, 1)
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            try:
                o = pool.acquire(timeout=0.002)
            except Exception:
                continue
            pool.release(o)

    threads = [threading.Thread(target=churn) for _ in range(6)]
    for t in threads:
        t.start()
    bad = 0
    for n in range(30):
        time.sleep(0.01)
        pid = os.fork()
        if pid == 0:
            # every call here takes the wait-queue lock at least once
            try:
                pool.acquire(timeout=0.01)
            except Exception:
                pass
            pool.close()
            os._exit(0)
        deadline = time.monotonic() + 10
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                if status != 0:
                    print("child", n, "status", status, flush=True); bad += 1
                break
            if time.monotonic() > deadline:
                print("child", n, "HUNG (wait-queue lock held at fork?)", flush=True)
                os.kill(pid, 9); os.waitpid(pid, 0); bad += 1
                break
            time.sleep(0.005)
    stop.set()
    for t in threads:
        t.join(10)
    s = pool.stats()
    assert s["in_use"] == 0 and s["waiting"] == 0, s
    print("DONE bad", bad, flush=True)
    sys.exit(1 if bad else 0)
"""


@pytest.mark.skipif(not HAS_FORK, reason="needs os.fork (Linux)")
def test_fork_while_the_wait_queue_is_busy_does_not_deadlock_the_child(tmp_path):
    proc = run_script(tmp_path, FORK_MUTEX_SCRIPT, timeout=120)
    assert proc.returncode == 0 and "DONE bad 0" in proc.stdout


FORK_GHOST_SCRIPT = """
    import os, sys, threading, time
    from pool_ext import ObjectPool
    pool = ObjectPool(object, 2)
    go = threading.Event()
    a = pool.acquire()

    def holder():
        o = pool.acquire(); go.wait(); pool.release(o)

    def waiter():              # is waiting in acquire() when the parent forks
        pool.release(pool.acquire())

    th = threading.Thread(target=holder); th.start()
    while pool.in_use < 2:
        time.sleep(0.001)
    tw = threading.Thread(target=waiter); tw.start()
    while pool.stats()["waiting"] < 1:
        time.sleep(0.001)

    pid = os.fork()
    if pid == 0:
        def deep(n, f):        # vary the stack depth of the child's waiters
            return f() if n == 0 else deep(n - 1, f)
        results = []
        for rnd in range(20):
            c = threading.Thread(target=lambda d=(rnd * 7) % 13:
                                 results.append(deep(d, pool.acquire)), daemon=True)
            c.start()
            time.sleep(0.02)
            pool.release(a)    # a slot is free: the child's waiter must get it
            c.join(5)
            if c.is_alive():
                print("round", rnd, "child waiter never woken", pool.stats(), flush=True)
                os._exit(5)
            a = results[-1]
        print("CHILD OK", flush=True)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    go.set(); pool.release(a); th.join(10); tw.join(10)
    assert pool.stats()["in_use"] == 0
    if os.WIFSIGNALED(status):
        print("CHILD KILLED BY SIGNAL", os.WTERMSIG(status), flush=True)
    sys.exit(0 if status == 0 else 1)
"""


@pytest.mark.skipif(not HAS_FORK, reason="needs os.fork (Linux)")
# Was a crash in 916e158 (SIGSEGV/SIGABRT in the child): waiters queued at
# fork time stayed in the child's wait queue, their nodes on the dead threads'
# stacks, which the child's new threads reuse.
def test_fork_with_a_waiting_thread_then_child_threads_wait(tmp_path):
    proc = run_script(tmp_path, FORK_GHOST_SCRIPT, timeout=120)
    assert proc.returncode == 0 and "CHILD OK" in proc.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_is_not_stuck_behind_the_parents_waiters(tmp_path):
    # A parent thread sleeps in acquire() when the process forks.  In the
    # child that thread does not exist; a release there must still wake the
    # child's own waiter, not the dead one.
    proc = run_script(tmp_path, """
        import os, sys, threading, time, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        from pool_ext import ObjectPool
        pool = ObjectPool(object, 1)
        held = pool.acquire()
        threading.Thread(target=lambda: pool.acquire(timeout=30), daemon=True).start()
        while pool.stats()["waiting"] == 0:
            time.sleep(0.001)
        pid = os.fork()
        if pid == 0:
            got = []
            started = threading.Event()
            def child_waiter():
                started.set()
                got.append(pool.acquire(timeout=20))
            t = threading.Thread(target=child_waiter)
            t.start()
            started.wait()
            time.sleep(0.3)                  # let it fall asleep
            if pool.stats()["waiting"] != 1:  # the parent's waiter was dropped
                os._exit(2)
            t0 = time.monotonic()
            pool.release(held)
            t.join(30)
            woke_promptly = time.monotonic() - t0 < 5
            os._exit(0 if got == [held] and woke_promptly else 1)
        _, status = os.waitpid(pid, 0)
        pool.release(held)
        sys.exit(os.waitstatus_to_exitcode(status))
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr


# ---- garbage collection with hand-outs out -------------------------------------

def test_objectpool_collected_while_leases_and_objects_are_out():
    class Conn:
        pass

    destroyed = []
    pool = ObjectPool(Conn, 3, destroy=destroyed.append)
    a = pool.acquire()
    lease = pool.lease()
    b = lease.__enter__()
    del pool
    gc.collect()
    # the lease keeps its pool alive; exiting it releases into that pool
    assert lease.__exit__(None, None, None) is False
    del lease
    gc.collect()
    assert isinstance(a, Conn) and isinstance(b, Conn)
    assert destroyed == []          # destroy() is for close(), not for GC


def test_objectpool_in_a_cycle_with_objects_that_release_themselves():
    """obj -> pool -> obj: the collector runs __del__ (which releases into
    the pool) before it clears anything."""
    log = []

    class SelfReleasing:
        def __del__(self):
            try:
                self.pool.release(self)
                log.append("released")
            except PoolError as e:
                log.append(type(e).__name__)

    current = {}

    def make():
        o = SelfReleasing()
        o.pool = current["pool"]
        return o

    for _ in range(50):
        pool = current["pool"] = ObjectPool(make, 4, reset=lambda o: None)
        held = [pool.acquire() for _ in range(4)]
        for o in held[:2]:
            pool.release(o)
        lease = pool.lease()
        lease.__enter__()
        current.clear()
        del held, o, pool, lease
        gc.collect()
    # held ones release themselves; idle ones find they are not in use
    assert set(log) == {"released", "PoolError"}, log


def test_bufferpool_collected_while_buffers_and_exports_are_out():
    import warnings
    bufs = BufferPool(4096, 4, zero_on_release=True)
    kept = bufs.acquire()
    lease = bufs.lease()
    leased = lease.__enter__()
    exported = bufs.acquire()
    view = memoryview(exported)
    exported.release()              # deferred: the view still exports it
    dropped = bufs.acquire()
    del bufs
    gc.collect()
    view[:3] = b"abc"
    assert bytes(view[:3]) == b"abc"
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        del dropped                 # unreleased handle: warns, returns its slot
        gc.collect()
    assert any(issubclass(x.category, ResourceWarning) for x in w)
    pool = kept.pool
    assert pool.in_use == 3
    view.release()
    lease.__exit__(None, None, None)
    kept.release()
    assert pool.in_use == 0 and pool.stats()["acquires"] == pool.stats()["releases"] == 4
    del pool, kept, leased, lease, exported
    gc.collect()


def test_buffer_in_a_reference_cycle_is_collected_and_returned():
    import warnings
    bufs = BufferPool(64, 2)

    class Holder:
        pass

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for _ in range(20):
            h = Holder()
            h.me = h
            h.buf = bufs.acquire()
            h.view = memoryview(h.buf)
            del h
            gc.collect()
    assert bufs.in_use == 0
    assert sum(issubclass(x.category, ResourceWarning) for x in w) == 20


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
