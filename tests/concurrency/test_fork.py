"""fork() with threads: the child's copy of a pool, and its wait queue.

Each test runs in a subprocess (helpers.run_script), so a crash or a hang
in the child shows up as a failed test, not as a dead test runner.

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
    test_fork_with_a_waiting_thread_then_child_threads_wait);
  - a round of evict() or min_idle running in another thread at fork time
    (the evictor's, or an evict() call) gives its slots back in the child
    (the tests at the end of this file).
"""
import os
import sys

import pytest

from helpers import run_script

HAS_FORK = hasattr(os, "fork") and sys.platform.startswith("linux")


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


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_waiting_is_zero_in_a_forked_child(tmp_path):
    proc = run_script(tmp_path, """
        import os, threading, time, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        from pool_ext import ObjectPool
        pool = ObjectPool(object, 1)
        held = pool.acquire()
        t = threading.Thread(target=lambda: pool.release(pool.acquire()))
        t.start()
        while pool.stats()["waiting"] < 1:
            time.sleep(0.001)
        pid = os.fork()
        if pid == 0:
            w = pool.stats()["waiting"]
            os._exit(0 if w == 0 else 10 + w)
        _, status = os.waitpid(pid, 0)
        pool.release(held)
        t.join()
        print("CHILD", os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status)
    """)
    assert proc.returncode == 0, proc.stderr
    assert "CHILD 0" in proc.stdout


# fork() while a round of evict() or min_idle runs in another thread: the
# round's slots (the idle objects it popped to test, the one it is destroying
# or filling) belong to a thread the child does not have.  The child gives
# them back (_health.pxi, _after_fork_in_child), so its pool keeps its whole
# capacity.  Before: the child lost every slot the round held (in CI, on
# 3.13t: test_fork_while_the_evictor_runs, "no free slot among 4").

# The start of both scripts below: the child's part, which checks its copy
# of the pool (size objects, none in use), acquires all n slots, and drains
# to nothing (exit 3: objects left; 4: an exception, printed).
ROUND_SCRIPT_HEAD = """
        import os, sys, threading, time, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        from pool_ext import ObjectPool
        def child_takes_all(pool, n, size):
            try:
                assert pool.in_use == 0 and pool.size == size, (pool.in_use, pool.size)
                held = [pool.acquire(timeout=2) for _ in range(n)]   # the whole capacity
                for o in held:
                    pool.release(o)
                pool.drain(timeout=5)
                os._exit(0 if pool.size == 0 else 3)
            except BaseException as e:
                print("child", repr(e), flush=True)
                os._exit(4)
"""


@pytest.mark.skipif(not HAS_FORK, reason="fork() on Linux")
@pytest.mark.parametrize("who", ["evict", "evictor"])
def test_fork_while_a_round_destroys_gives_its_slots_back_in_the_child(tmp_path, who):
    proc = run_script(tmp_path, ROUND_SCRIPT_HEAD + """
        entered, go = threading.Event(), threading.Event()
        first = [True]
        def destroy(o):
            if first[0]:
                first[0] = False
                entered.set()
                go.wait(30)      # the round holds this slot (and 3 more) meanwhile
        pool = ObjectPool(object, 4, max_idle=0.05, destroy=destroy)
        for o in [pool.acquire() for _ in range(4)]:
            pool.release(o)
        time.sleep(0.1)          # all four expired
        if WHO == "evict":
            t = threading.Thread(target=pool.evict)
            t.start()
        else:
            pool.start_evictor(60)
        assert entered.wait(30)
        pid = os.fork()
        if pid == 0:
            child_takes_all(pool, 4, 3)   # (the one being destroyed is gone)
        _, status = os.waitpid(pid, 0)
        go.set()
        if WHO == "evict":
            t.join()
        else:
            pool.stop_evictor()
        assert pool.in_use == 0 and pool.size == 0, (pool.in_use, pool.size)
        print("CHILD", os.waitstatus_to_exitcode(status))
    """.replace("WHO", repr(who)), timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CHILD 0" in proc.stdout, proc.stdout


@pytest.mark.skipif(not HAS_FORK, reason="fork() on Linux")
def test_fork_while_the_evictor_fills_gives_the_slot_back_in_the_child(tmp_path):
    proc = run_script(tmp_path, ROUND_SCRIPT_HEAD + """
        entered, go = threading.Event(), threading.Event()
        block = [True]
        def factory():
            if block[0]:
                block[0] = False
                entered.set()
                go.wait(30)      # the evictor holds an empty slot meanwhile
            return object()
        pool = ObjectPool(factory, 2, min_idle=1)
        pool.start_evictor(60)
        assert entered.wait(30)
        pid = os.fork()
        if pid == 0:
            child_takes_all(pool, 2, 0)   # (the slot being filled is empty again)
        _, status = os.waitpid(pid, 0)
        go.set()
        pool.stop_evictor()
        assert pool.idle == 1, pool.idle                 # the parent's round finished
        print("CHILD", os.waitstatus_to_exitcode(status))
    """, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CHILD 0" in proc.stdout, proc.stdout
