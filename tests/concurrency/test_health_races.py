"""The health options under threads and fork(): drain() racing releases,
check/max_idle/discard/the evictor racing hand-outs (no object is ever
handed to two owners, none is destroyed twice, no slot is lost), fork()
while the evictor runs.  (Ctrl-C during drain(): test_signals.py.)

Scripts that could hang or crash run in a subprocess (helpers.run_script).
"""
import os
import sys
import threading
import time

import pytest

from helpers import Thing, run_script
from pool_ext import ObjectPool, PoolClosed, PoolExhausted

HAS_FORK = hasattr(os, "fork") and sys.platform.startswith("linux")


class Owned(Thing):
    """Knows its owner: a second hand-out while it is held is caught."""

    def __init__(self):
        super().__init__()
        self.owner = None
        self.destroyed = 0


def take(obj, errors):
    me = threading.get_ident()
    if obj.owner is not None:
        errors.append(f"handed out to two owners: {obj!r}")
    if obj.destroyed:
        errors.append("a destroyed object was handed out")
    obj.owner = me


def give_up(obj):
    obj.owner = None


def destroy(obj):
    obj.destroyed += 1


@pytest.mark.parametrize("hooks", [False, True], ids=["plain", "check+reset+track"])
def test_drain_races_threads_that_acquire_and_release(rng, hooks):
    made = []

    def factory():
        obj = Owned()
        made.append(obj)
        return obj

    options = dict(check=lambda o: rng.random() > 0.05, reset=give_up,
                   track=True, max_idle=0.01) if hooks else {}
    pool = ObjectPool(factory, 4, destroy=destroy, **options)
    errors, closed = [], []

    def worker():
        while True:
            try:
                obj = pool.acquire(timeout=10)
            except PoolClosed:
                closed.append(1)
                return
            take(obj, errors)
            time.sleep(rng.random() * 0.0005)
            if rng.random() < 0.05:
                give_up(obj)
                pool.discard(obj)
            else:
                give_up(obj)
                pool.release(obj)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    pool.drain(timeout=30)
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(closed) == 8
    assert pool.in_use == 0 and pool.size == 0 and pool.closed
    assert [o.destroyed for o in made] == [1] * len(made)   # each once, all of them


def test_check_max_idle_discard_and_the_evictor_race_hand_outs(rng):
    made = []

    def factory():
        obj = Owned()
        made.append(obj)
        return obj

    pool = ObjectPool(factory, 3, destroy=destroy, check=lambda o: rng.random() > 0.02,
                      max_idle=0.002, max_lifetime=0.005, min_idle=2, track=True)
    pool.start_evictor(0.001)
    errors = []
    stop = time.monotonic() + 2.0

    def worker():
        while time.monotonic() < stop:
            try:
                with pool.lease(timeout=5) as obj:
                    take(obj, errors)
                    if rng.random() < 0.05:
                        give_up(obj)
                        pool.discard(obj)
                        continue
                    time.sleep(rng.random() * 0.001)
                    give_up(obj)
            except PoolExhausted as e:
                errors.append(str(e))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    pool.stop_evictor()
    s = pool.stats()
    assert errors == []
    assert pool.in_use == 0 and pool.holders() == []
    assert s["creations"] - s["destructions"] == pool.size == sum(not o.destroyed for o in made)
    assert all(o.destroyed <= 1 for o in made)
    assert s["checks_failed"] > 0 and s["expired"] > 0 and s["discarded"] > 0
    pool.close()
    assert all(o.destroyed == 1 for o in made)


@pytest.mark.skipif(not HAS_FORK, reason="fork() on Linux")
def test_fork_while_the_evictor_runs(tmp_path):
    proc = run_script(tmp_path, """
        import os, threading, time
        from pool_ext import ObjectPool
        made = []
        pool = ObjectPool(lambda: made.append(1) or object(), 4, min_idle=3,
                          max_idle=0.001, destroy=lambda o: None)
        pool.start_evictor(0.001)            # busy: evicting and refilling all the time
        for k in range(30):
            pid = os.fork()
            if pid == 0:
                # the child: the evictor thread is not here; the pool works,
                # and an evictor can be started again
                try:
                    held = [pool.acquire(timeout=5) for _ in range(2)]
                    for o in held:
                        pool.release(o)
                    pool.start_evictor(0.001)
                    time.sleep(0.01)
                    pool.stop_evictor()
                    pool.drain(timeout=5)
                    os._exit(0 if pool.size == 0 else 3)
                except BaseException as e:
                    print("child", k, repr(e), flush=True)
                    os._exit(4)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, (k, status)
        pool.stop_evictor()
        assert pool.in_use == 0
        print("OK", len(made))
    """, timeout=120)
    assert proc.returncode == 0 and "OK" in proc.stdout
