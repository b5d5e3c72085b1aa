"""pool_ext.Queue and pool_ext.LifoQueue against queue.Queue / queue.LifoQueue:
the API and its edge cases, fairness among blocked getters and putters,
timeouts and Ctrl-C at the moment of a hand-off, a threaded stress test (no
item lost or duplicated), and a state machine with the stdlib as the model."""
import os
import queue
import sys
import threading
import time

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import pool_ext
from helpers import run_script

PAIRS = [(pool_ext.Queue, queue.Queue), (pool_ext.LifoQueue, queue.LifoQueue)]
KINDS = [pool_ext.Queue, pool_ext.LifoQueue]


def wait_blocked(q, getters=0, putters=0, timeout=10.0):
    """Sleeps until at least that many threads are blocked in q."""
    deadline = time.monotonic() + timeout
    while True:
        g, p = q._waiting()
        if g >= getters and p >= putters:
            return
        assert time.monotonic() < deadline, f"blocked: {g} getters, {p} putters"
        time.sleep(0.001)


def start(fn, *args):
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


# -- the API, as the stdlib's ---------------------------------------------------

@pytest.mark.parametrize("ours, theirs", PAIRS)
def test_order_none_and_duplicates_match_the_stdlib(ours, theirs):
    items = [None, 1, None, "a", 1, 1, (), None]
    q, ref = ours(), theirs()
    for x in items:
        q.put(x)
        ref.put(x)
    assert q.qsize() == ref.qsize() == len(items)
    assert [q.get() for _ in items] == [ref.get() for _ in items]
    assert q.empty() and not q.full()


@pytest.mark.parametrize("kind", KINDS)
def test_exceptions_are_the_stdlibs(kind):
    q = kind(1)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(False)
    with pytest.raises(queue.Empty):
        q.get(timeout=0)
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    q.put(1)
    with pytest.raises(queue.Full):
        q.put_nowait(2)
    with pytest.raises(queue.Full):
        q.put(2, block=False)
    with pytest.raises(queue.Full):
        q.put(2, timeout=0)
    with pytest.raises(queue.Full):
        q.put(2, timeout=0.01)
    assert q.get() == 1 and q.empty()   # the refused items never went in


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("maxsize", [0, -1, -100])
def test_maxsize_not_positive_is_unbounded(kind, maxsize):
    q = kind(maxsize)
    assert q.maxsize == maxsize
    for i in range(1000):            # (grows the ring several times)
        q.put_nowait(i)
    assert not q.full() and q.qsize() == 1000
    got = sorted(q.get_nowait() for _ in range(1000))
    assert got == list(range(1000))


@pytest.mark.parametrize("ours, theirs", PAIRS)
def test_queue_attribute_is_a_snapshot_in_the_stdlibs_order(ours, theirs):
    q, ref = ours(), theirs()
    for x in [1, None, 2, 1]:
        q.put(x)
        ref.put(x)
    q.get()
    ref.get()
    snap = q.queue
    assert snap == list(ref.queue)
    snap.append("not in the queue")
    assert q.qsize() == 3 and q.queue == list(ref.queue)


@pytest.mark.parametrize("kind", KINDS)
def test_full_and_maxsize(kind):
    q = kind(maxsize=2)
    assert q.maxsize == 2 and not q.full()
    q.put(1)
    q.put(2)
    assert q.full() and q.qsize() == 2


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ["get", "put"])
@pytest.mark.parametrize("timeout, error", [(-1, ValueError), (-0.5, ValueError),
                                             (float("nan"), ValueError),
                                             ("1", TypeError), (True, TypeError),
                                             ([], TypeError)])
def test_bad_timeouts_raise_even_when_no_wait_is_needed(kind, method, timeout, error):
    q = kind(2)
    q.put(1)
    with pytest.raises(error):
        q.get(True, timeout) if method == "get" else q.put(2, True, timeout)
    assert q.qsize() == 1            # nothing happened
    # block=False ignores the timeout, as queue.Queue does
    if method == "get":
        assert q.get(False, timeout) == 1
    else:
        q.put(2, False, timeout)
        assert q.qsize() == 2


# Every call shape pools use, and some they do not: get()/put() read the
# plain ones in C (_entries.pxi) and hand the rest to the full parser, so
# both routes must give what the stdlib gives (result, or exception type).
CALL_SHAPES = [
    ((), {}), ((True,), {}), ((False,), {}), ((True, 5.0), {}), ((True, 0), {}),
    ((False, "x"), {}), ((True, None), {}), ((1,), {}), ((0,), {}), ((1, 5),),
    ((), {"block": True}), ((), {"block": False}), ((), {"timeout": 5.0}),
    ((), {"block": True, "timeout": 5}), ((), {"timeout": 5.0, "block": True}),
    ((), {"block": False, "timeout": -1}), ((True,), {"timeout": 0.5}),
    ((True,), {"block": False}), ((True, 1.0), {"timeout": 1.0}),
    ((), {"timeout": 1, "timeout2": 1}), ((), {"blok": True}), ((True, 1.0, 2), {}),
    ((True, -1), {}), ((), {"timeout": "1"}),
]   # (NaN and True as timeouts raise here, not in the stdlib: tested above)


def _outcome(call):
    try:
        return ("ok", call())
    except Exception as e:          # noqa: BLE001 (the type is what is compared)
        return ("raised", type(e))


@pytest.mark.parametrize("ours, theirs", PAIRS)
@pytest.mark.parametrize("shape", CALL_SHAPES, ids=repr)
def test_get_and_put_call_shapes_match_the_stdlib(ours, theirs, shape):
    # get finds an item and put finds room: no call waits, whatever its shape
    args, kwargs = shape if len(shape) == 2 else (shape[0], {})
    q, ref = ours(2), theirs(2)
    q.put("a")
    ref.put("a")
    assert _outcome(lambda: q.get(*args, **kwargs)) == _outcome(lambda: ref.get(*args, **kwargs))
    assert _outcome(lambda: q.put("b", *args, **kwargs)) == \
        _outcome(lambda: ref.put("b", *args, **kwargs))
    assert q.queue == list(ref.queue)


@pytest.mark.parametrize("kind", KINDS)
def test_put_reads_block_once(kind):
    # a block whose truth changes (or raises the second time it is asked)
    # must not leak the item's reference or skip the timeout check
    class Flaky:
        calls = 0

        def __bool__(self):
            Flaky.calls += 1
            if Flaky.calls > 1:
                raise RuntimeError("asked twice")
            return True
    q = kind(1)
    item = object()
    before = sys.getrefcount(item)
    q.put(item, Flaky(), 0)
    assert Flaky.calls == 1
    assert q.get_nowait() is item
    assert sys.getrefcount(item) == before
    Flaky.calls = 0
    assert q.put("x", Flaky()) is None and Flaky.calls == 1
    Flaky.calls = 0
    assert q.get(Flaky()) == "x" and Flaky.calls == 1


@pytest.mark.parametrize("kind", KINDS)
def test_odd_but_valid_timeouts(kind):
    class F(float):
        pass
    q = kind()
    q.put(1)
    for t in (0, 0.0, 5, float("inf"), F(1.5), 2**62):
        q.put(q.get(True, t), True, t)
    assert q.qsize() == 1


@pytest.mark.parametrize("kind", KINDS)
def test_huge_maxsize_and_int_likes(kind):
    class Index:
        def __index__(self):
            return 1
    q = kind(2**100)                    # (bounded, in effect never full)
    assert q.maxsize == 2**100 and not q.full()
    q.put(1)
    assert kind(Index()).maxsize == 1
    assert kind.__new__(kind).maxsize == 0    # __init__ skipped: unbounded


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", [1.5, "3", None])
def test_bad_maxsize_is_a_type_error(kind, bad):
    with pytest.raises(TypeError):
        kind(bad)


def test_lifo_is_a_queue_and_subclassing_may_set_the_exceptions():
    assert issubclass(pool_ext.LifoQueue, pool_ext.Queue)

    class Mine(pool_ext.LifoQueue):
        Empty = KeyError
        Full = OverflowError

        def __init__(self, maxsize, flag=False):
            super().__init__(maxsize)
            self.flag = flag

    q = Mine(1, flag=True)
    assert q.flag and q.maxsize == 1
    with pytest.raises(KeyError):
        q.get_nowait()
    q.put(1)
    with pytest.raises(OverflowError):
        q.put(2, timeout=0.01)
    assert pool_ext.Queue[int] is not None     # generic, as queue.Queue


def test_items_are_released_and_cycles_collected():
    import gc
    import weakref

    class Conn:
        pass
    c = Conn()
    c.q = pool_ext.LifoQueue()
    c.q.put(c)                 # the queue refers to its item, which refers to it
    ref = weakref.ref(c)
    del c
    gc.collect()
    assert ref() is None

    x = Conn()
    q = pool_ext.Queue()
    q.put(x)
    ref = weakref.ref(x)
    del x, q                   # no cycle: freed with the queue
    assert ref() is None


# -- fairness ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_blocked_getters_are_served_oldest_first(kind):
    q = kind()
    got = []
    threads = []
    for i in range(5):
        threads.append(start(lambda i=i: got.append((i, q.get()))))
        wait_blocked(q, getters=i + 1)
    for x in "abcde":
        q.put(x)
    for t in threads:
        t.join(10)
    assert sorted(got) == list(enumerate("abcde"))


@pytest.mark.parametrize("kind", KINDS)
def test_a_put_goes_to_the_waiting_getter_not_a_newcomer(kind):
    q = kind()
    got = []
    t = start(lambda: got.append(q.get()))
    wait_blocked(q, getters=1)
    q.put("x")
    # the item is the waiter's even before it runs: nobody else can take it
    with pytest.raises(queue.Empty):
        q.get_nowait()
    t.join(10)
    assert got == ["x"]


@pytest.mark.parametrize("kind", KINDS)
def test_blocked_putters_are_served_oldest_first(kind):
    q = kind(1)
    q.put("first")
    threads = []
    for i in range(4):
        threads.append(start(q.put, i))
        wait_blocked(q, putters=i + 1)
    got = [q.get()]
    # room freed by a get goes to the oldest putter: no newcomer barges
    with pytest.raises(queue.Full):
        q.put_nowait("barger")
    for _ in range(4):
        got.append(q.get(timeout=10))
    for t in threads:
        t.join(10)
    assert got == ["first", 0, 1, 2, 3]


# -- timeouts and Ctrl-C at the moment of a hand-off ------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_getter_timing_out_at_a_handoff_loses_nothing(kind, rng):
    # A put races each getter's timeout: either the getter has the item, or it
    # raised Empty and the item is still in the queue.  Never both, never none.
    for _ in range(200):
        q = kind()
        out = []

        def getter():
            try:
                out.append(q.get(timeout=0.002))
            except queue.Empty:
                out.append("empty")
        t = start(getter)
        time.sleep(rng.uniform(0, 0.004))
        q.put("item")
        t.join(10)
        left = [q.get_nowait() for _ in range(q.qsize())]
        assert (out, left) in ((["item"], []), (["empty"], ["item"]))


@pytest.mark.parametrize("kind", KINDS)
def test_putter_timing_out_at_a_handoff_loses_nothing(kind, rng):
    for _ in range(200):
        q = kind(1)
        q.put("old")
        out = []

        def putter():
            try:
                q.put("new", timeout=0.002)
                out.append("put")
            except queue.Full:
                out.append("full")
        t = start(putter)
        time.sleep(rng.uniform(0, 0.004))
        assert q.get() == "old"
        t.join(10)
        left = [q.get_nowait() for _ in range(q.qsize())]
        assert (out, left) in ((["put"], ["new"]), (["full"], []))


SIGINT_AT_HANDOFF = """
    import itertools, os, signal, sys, threading, time
    import pool_ext
    signal.signal(signal.SIGINT, signal.default_int_handler)
    kind = getattr(pool_ext, sys.argv[1])
    second = sys.argv[2] == "second"
    lost = dup = interrupted = 0
    for round in range(60):
        q = kind()
        seen, others = [], []
        def put_then_interrupt():
            while q._waiting()[0] < 1:
                time.sleep(0.0002)
            if second:                             # a second getter, behind us
                o = threading.Thread(target=lambda: seen.append(q.get()))
                o.start()
                others.append(o)
                while q._waiting()[0] < 2:
                    time.sleep(0.0002)
            if round % 2:
                time.sleep(0.001)
            q.put(round)                           # handed to the main thread
            os.kill(os.getpid(), signal.SIGINT)
        t = threading.Thread(target=put_then_interrupt)
        t.start()
        try:
            # q.get called from C (iter(callable, sentinel)) and its item stored
            # in C: no bytecode runs between its return and the store, so a
            # signal arriving just after the get returned (free-threaded: the
            # main thread can run ahead of the kill) finds the item kept.  (In
            # `x = q.get()` the interpreter would raise it before the store:
            # any call's result is the caller's to lose, queue.Queue's too.)
            seen.extend(itertools.islice(iter(q.get, None), 1))
            time.sleep(0.02)                       # a signal pending at return lands here
        except KeyboardInterrupt:
            interrupted += 1
        t.join()
        for o in others:
            q.put("unblock")                       # if it is still waiting
            o.join()
        while q.qsize():
            seen.append(q.get_nowait())
        n = seen.count(round)
        lost += n == 0
        dup += n > 1
    print("LOST", lost, "DUP", dup, "INTERRUPTED", interrupted)
    sys.exit(1 if lost or dup or not interrupted else 0)
"""


@pytest.mark.skipif(os.name != "posix", reason="sends a real SIGINT")
@pytest.mark.parametrize("kind", ["Queue", "LifoQueue"])
@pytest.mark.parametrize("others", ["alone", "second"])
def test_sigint_at_a_handoff_loses_no_item(tmp_path, kind, others):
    """Ctrl-C in a getter that was just handed an item: the item goes to the
    next getter, or back into the queue; KeyboardInterrupt is raised."""
    proc = run_script(tmp_path, SIGINT_AT_HANDOFF, kind, others, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


SIGINT_PUTTER = """
    import os, signal, sys, threading, time
    import pool_ext
    signal.signal(signal.SIGINT, signal.default_int_handler)
    q = pool_ext.Queue(1)
    q.put("old")
    def interrupt():
        while q._waiting()[1] < 1:
            time.sleep(0.0005)
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=interrupt).start()
    try:
        q.put("new")
    except KeyboardInterrupt:
        print("INTERRUPTED")
    assert q._waiting() == (0, 0)
    assert [q.get_nowait() for _ in range(q.qsize())] == ["old"]
    print("OK")
"""


@pytest.mark.skipif(os.name != "posix", reason="sends a real SIGINT")
def test_sigint_interrupts_a_blocked_put_whose_item_stays_out(tmp_path):
    proc = run_script(tmp_path, SIGINT_PUTTER)
    assert proc.returncode == 0 and "INTERRUPTED" in proc.stdout, proc.stdout + proc.stderr


# -- threads: nothing lost, nothing twice ------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("maxsize", [0, 1, 3])
def test_threads_lose_and_duplicate_no_item(kind, maxsize):
    q = kind(maxsize)
    n_threads, per = 4, 2000
    got = [[] for _ in range(n_threads)]
    barrier = threading.Barrier(2 * n_threads)

    def producer(k):
        barrier.wait()
        for i in range(per):
            if i % 7 == 0:
                while True:
                    try:
                        q.put((k, i), timeout=0.001)
                        break
                    except queue.Full:
                        pass
            else:
                q.put((k, i))

    def consumer(k):
        barrier.wait()
        for i in range(per):
            if i % 5 == 0:
                while True:
                    try:
                        got[k].append(q.get(timeout=0.001))
                        break
                    except queue.Empty:
                        pass
            else:
                got[k].append(q.get())
    threads = [start(producer, k) for k in range(n_threads)]
    threads += [start(consumer, k) for k in range(n_threads)]
    for t in threads:
        t.join(120)
        assert not t.is_alive()
    items = sorted(x for g in got for x in g)
    assert items == sorted((k, i) for k in range(n_threads) for i in range(per))
    assert q.empty() and q._waiting() == (0, 0)
    if kind is pool_ext.Queue:   # FIFO: each producer's items in its order, per consumer
        for g in got:
            for k in range(n_threads):
                mine = [i for (kk, i) in g if kk == k]
                assert mine == sorted(mine)


# -- a state machine: queue.Queue / LifoQueue as the model -------------------------

class QueueMachine(RuleBasedStateMachine):
    """Single-threaded operations, each checked against the stdlib's queue."""

    def __init__(self):
        super().__init__()
        self.q = self.ref = None

    @precondition(lambda self: self.q is None)
    @rule(lifo=st.booleans(), maxsize=st.integers(-2, 4))
    def make(self, lifo, maxsize):
        ours, theirs = PAIRS[lifo]
        self.q, self.ref = ours(maxsize), theirs(maxsize)

    @precondition(lambda self: self.q is not None)
    @rule(item=st.sampled_from([None, 0, 1, "a", (None,)]),
          how=st.sampled_from(["nowait", "block0", "noblock"]))
    def put(self, item, how):
        results = []
        for q in (self.q, self.ref):
            try:
                if how == "nowait":
                    q.put_nowait(item)
                elif how == "block0":
                    q.put(item, timeout=0)
                else:
                    q.put(item, False, -1)   # the timeout is ignored
                results.append("ok")
            except queue.Full:
                results.append("full")
        assert results[0] == results[1]

    @precondition(lambda self: self.q is not None)
    @rule(how=st.sampled_from(["nowait", "block0", "noblock"]))
    def get(self, how):
        results = []
        for q in (self.q, self.ref):
            try:
                if how == "nowait":
                    results.append(("ok", q.get_nowait()))
                elif how == "block0":
                    results.append(("ok", q.get(True, 0)))
                else:
                    results.append(("ok", q.get(False, "ignored")))
            except queue.Empty:
                results.append(("empty", None))
        assert results[0] == results[1]

    @invariant()
    def sizes_agree(self):
        if self.q is not None:
            assert self.q.qsize() == self.ref.qsize()
            assert self.q.empty() == self.ref.empty()
            assert self.q.full() == self.ref.full()


QueueMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                          deadline=None)
test_queue_state_machine = pytest.mark.thread_unsafe(
    reason="hypothesis's stateful runner is not thread-safe")(QueueMachine.TestCase)


@pytest.mark.parametrize("cls", [pool_ext.Queue, pool_ext.LifoQueue])
def test_put_of_none_on_a_full_queue_times_out(cls):
    """None is an item like any other: a timed-out put(None) raises Full and
    puts nothing (it returned quietly and dropped the None, found by the
    break-it review), and a refused put leaks no reference to None."""
    q = cls(1)
    q.put("x")
    with pytest.raises(queue.Full):
        q.put(None, timeout=0.01)
    with pytest.raises(queue.Full):
        q.put(None, block=False)
    assert q.qsize() == 1 and q.get_nowait() == "x"
    before = sys.getrefcount(None)
    q.put("x")
    for _ in range(1000):
        with pytest.raises(queue.Full):
            q.put_nowait(None)
    assert sys.getrefcount(None) - before < 10
    q.get_nowait()
    q.put(None, timeout=1)                            # room: it goes in
    assert q.get_nowait() is None


@pytest.mark.parametrize("cls", [pool_ext.Queue, pool_ext.LifoQueue])
def test_init_twice_is_refused(cls):
    """A second __init__ changed the bound under waiting putters without
    waking them (queue.Queue's resets the queue; neither is worth having)."""
    q = cls(1)
    q.put(1)
    with pytest.raises(RuntimeError, match="twice"):
        q.__init__(5)
    assert q.maxsize == 1 and q.full()
