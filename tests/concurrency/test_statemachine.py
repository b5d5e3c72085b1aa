"""Stateful property tests: random sequences of pool operations, each checked
against a small pure-Python model of the pool.  Any divergence is a bug.

ObjectPool: acquire / try_acquire / lease (with an exception inside) /
release / double release / foreign release / release of an object whose
reset raises or that fails validation / close.

BufferPool: acquire / try_acquire / export (memoryview) / release (also while
exported: deferred) / double release / foreign and cross-pool release / use
after release / release of the export / close, with zero_on_release on and
off.  Every live buffer carries its own pattern, checked after every step, so
two owners of one slot cannot go unnoticed.

POOL_HYPOTHESIS_EXAMPLES (default 200) sets max_examples per machine; each
example runs up to POOL_HYPOTHESIS_STEPS (default 40) steps (read in
conftest.py, the `knobs` fixture).
"""
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, invariant, precondition, rule,
                                 run_state_machine_as_test)

from helpers import Boom
from pool_ext import BufferPool, ObjectPool, PoolClosed, PoolError, PoolExhausted

pytestmark = pytest.mark.slow       # about 5 s per machine at the default 200 examples

COUNTS = {}


def count(machine, what):
    key = (type(machine).__name__, what)
    COUNTS[key] = COUNTS.get(key, 0) + 1


class Obj:
    def __init__(self, serial):
        self.serial = serial
        self.fail_reset = False
        self.broken = False

    def __repr__(self):
        return f"Obj({self.serial})"


# ---- both pools ------------------------------------------------------------

class PoolMachine(RuleBasedStateMachine):
    """The rules both pools share: acquire() and try_acquire() against the
    model.  A subclass builds self.pool and says whether it is built(),
    whether every slot is in use (full()), and checks each hand-out against
    its model (handout())."""

    @precondition(lambda self: self.built())
    @rule(timeout=st.sampled_from([0, 0.0, 0.001]))
    def acquire(self, timeout):
        count(self, "steps")
        if self.closed:
            with pytest.raises(PoolClosed):
                self.pool.acquire(timeout=timeout)
        elif self.full():
            with pytest.raises(PoolExhausted):
                self.pool.acquire(timeout=timeout)
        else:
            self.handout(self.pool.acquire(timeout=timeout))

    @precondition(lambda self: self.built())
    @rule()
    def try_acquire(self):
        count(self, "steps")
        if self.closed:
            with pytest.raises(PoolClosed):
                self.pool.try_acquire()
        elif self.full():
            assert self.pool.try_acquire() is None
        else:
            self.handout(self.pool.try_acquire())


# ---- ObjectPool ------------------------------------------------------------

class ObjectPoolMachine(PoolMachine):
    """Model: `idle` is a stack (the pool's idle list is LIFO), `held` the
    objects handed out, `created`/`destroyed` what the hooks saw."""

    def __init__(self):
        super().__init__()
        self.capacity = None
        count(self, "examples")

    @rule(capacity=st.integers(1, 4), prefill=st.integers(0, 4))
    @precondition(lambda self: self.capacity is None)
    def build(self, capacity, prefill):
        prefill = min(prefill, capacity)
        self.capacity = capacity
        self.created = []
        self.destroyed = []
        self.reset_calls = 0

        def factory():
            o = Obj(len(self.created))
            self.created.append(o)
            return o

        def reset(o):
            self.reset_calls += 1
            if o.fail_reset:
                raise Boom("reset failed")

        self.pool = ObjectPool(factory, capacity, reset=reset,
                               validate=lambda o: not o.broken,
                               destroy=self.destroyed.append, prefill=prefill)
        self.idle = list(self.created)       # prefill: made and idle
        self.held = []
        self.released = []                   # handed out once, not held now
        self.closed = False
        self.acquires = self.releases = 0

    def built(self):
        return self.capacity is not None

    # -- the model's answer for one hand-out ---------------------------------
    def full(self):
        return len(self.held) == self.capacity

    def handout(self, got):
        if self.idle:
            expected = self.idle.pop()       # LIFO: the last one released
            assert got is expected, f"handed {got}, model expected {expected}"
        else:
            assert got is self.created[-1] and got not in self.held, \
                f"handed {got}: not a fresh object"
        assert got not in self.held, f"{got} handed out twice"
        if got in self.released:
            self.released.remove(got)
        self.held.append(got)
        self.acquires += 1

    def model_release(self, o, raises=None):
        self.held.remove(o)
        self.released.append(o)
        self.releases += 1
        if raises is None and not o.broken and not self.closed:
            self.idle.append(o)
        else:
            self.destroyed_model.append(o)

    @property
    def destroyed_model(self):
        if not hasattr(self, "_dm"):
            self._dm = []
        return self._dm

    # -- rules -------------------------------------------------------------
    @precondition(lambda self: self.built() and self.held)
    @rule(data=st.data(), how=st.sampled_from(["ok", "broken", "fail_reset"]))
    def release(self, data, how):
        count(self, "steps")
        o = data.draw(st.sampled_from(self.held))
        if how == "broken":
            o.broken = True
        elif how == "fail_reset":
            o.fail_reset = True
        if how == "fail_reset":
            with pytest.raises(Boom):
                self.pool.release(o)
            self.model_release(o, raises=Boom)
        else:
            self.pool.release(o)
            self.model_release(o)
        o.broken = o.fail_reset = False

    @precondition(lambda self: self.built() and self.released)
    @rule(data=st.data())
    def double_release(self, data):
        count(self, "steps")
        o = data.draw(st.sampled_from(self.released))
        assert o not in self.held
        before = self.pool.stats()
        # also when it was discarded (dropped from the pool): the pool
        # remembers recent discards, so it does not call it foreign
        with pytest.raises(PoolError, match="not in use"):
            self.pool.release(o)
        assert self.pool.stats() == before

    @precondition(built)
    @rule()
    def foreign_release(self):
        count(self, "steps")
        before = self.pool.stats()
        with pytest.raises(PoolError, match="was not handed out by this pool"):
            self.pool.release(Obj(-1))
        assert self.pool.stats() == before

    @precondition(built)
    @rule(raise_inside=st.booleans())
    def lease(self, raise_inside):
        count(self, "steps")
        if self.closed:
            with pytest.raises(PoolClosed):
                with self.pool.lease(timeout=0):
                    pass
            return
        if len(self.held) == self.capacity:
            with pytest.raises(PoolExhausted):
                with self.pool.lease(timeout=0):
                    pass
            return
        try:
            with self.pool.lease(timeout=0) as o:
                self.handout(o)
                if raise_inside:
                    raise Boom("inside the lease")
        except Boom:
            assert raise_inside
        self.model_release(o)

    @precondition(built)
    @rule()
    def close(self):
        count(self, "steps")
        self.pool.close()
        if not self.closed:
            self.destroyed_model.extend(reversed(self.idle))
            self.idle = []
        self.closed = True

    # -- invariants ----------------------------------------------------------
    @invariant()
    def matches_model(self):
        if not self.built():
            return
        s = self.pool.stats()
        alive = len(self.idle) + len(self.held)
        assert s["in_use"] == self.pool.in_use == len(self.held), (s, self.held)
        assert s["size"] == alive, (s, self.idle, self.held)
        assert s["creations"] == len(self.created)
        assert s["destructions"] == len(self.destroyed_model), (s, self.destroyed_model)
        assert sorted(map(id, self.destroyed)) == sorted(map(id, self.destroyed_model))
        assert len(set(map(id, self.destroyed))) == len(self.destroyed), "destroyed twice"
        assert s["acquires"] == self.acquires and s["releases"] == self.releases, s
        assert s["available"] == (0 if self.closed else self.capacity - len(self.held))
        assert self.pool.idle == len(self.idle)
        assert self.pool.closed == self.closed
        assert s["waiting"] == 0 and s["capacity"] == self.capacity
        assert alive <= self.capacity

    def teardown(self):
        if self.built():
            for o in list(self.held):
                self.pool.release(o)
            assert self.pool.in_use == 0


# ---- BufferPool --------------------------------------------------------------

class BufferPoolMachine(PoolMachine):
    """Model: each hand-out is a record {handle, released, views, tag}; a
    slot is in use while its handle is unreleased or any view is alive."""
    zero_on_release = False

    def __init__(self):
        super().__init__()
        self.pool = None
        count(self, "examples")

    @precondition(lambda self: self.pool is None)
    @rule(capacity=st.integers(1, 4), size=st.sampled_from([1, 7, 64, 100]))
    def build(self, capacity, size):
        self.capacity, self.size = capacity, size
        self.pool = BufferPool(size, capacity, zero_on_release=self.zero_on_release)
        self.other = BufferPool(size, 1)
        self.records = []
        self.closed = False
        self.acquires = self.releases = 0
        self.tags = 0

    def built(self):
        return self.pool is not None

    def in_use(self):
        return sum(1 for r in self.records if not r["released"] or r["views"])

    def full(self):
        return self.in_use() == self.capacity

    def live(self):
        return [r for r in self.records if not r["released"]]

    def released_records(self):
        return [r for r in self.records if r["released"]]

    def exported(self):
        return [r for r in self.records if r["views"]]

    def handout(self, buf):
        assert len(buf) == self.size
        view = memoryview(buf)
        if self.zero_on_release:
            assert view == bytes(self.size), "a reused buffer was not zeroed"
        self.tags += 1
        pattern = bytes([self.tags % 251 + 1]) * self.size
        view[:] = pattern
        view.release()
        self.records.append({"buf": buf, "released": False, "views": [], "pattern": pattern})
        self.acquires += 1

    def slot_freed(self):
        self.releases += 1

    @precondition(lambda self: self.built() and self.live())
    @rule(data=st.data())
    def export(self, data):
        count(self, "steps")
        r = data.draw(st.sampled_from(self.live()))
        r["views"].append(memoryview(r["buf"]))

    @precondition(lambda self: self.built() and self.live())
    @rule(data=st.data(), through_pool=st.booleans())
    def release(self, data, through_pool):
        """Release; with views alive the slot stays in use (deferred)."""
        count(self, "steps")
        r = data.draw(st.sampled_from(self.live()))
        if through_pool:
            self.pool.release(r["buf"])
        else:
            r["buf"].release()
        r["released"] = True
        if not r["views"]:
            self.slot_freed()

    @precondition(lambda self: self.built() and self.exported())
    @rule(data=st.data())
    def release_view(self, data):
        """The export ends; the last one of a released handle frees the slot."""
        count(self, "steps")
        r = data.draw(st.sampled_from(self.exported()))
        v = r["views"].pop(data.draw(st.integers(0, len(r["views"]) - 1)))
        assert v == r["pattern"], "the view saw someone else's bytes"
        v.release()
        if r["released"] and not r["views"]:
            self.slot_freed()

    @precondition(lambda self: self.built() and self.released_records())
    @rule(data=st.data(), through_pool=st.booleans())
    def double_release_and_use_after_release(self, data, through_pool):
        count(self, "steps")
        r = data.draw(st.sampled_from(self.released_records()))
        before = self.pool.stats()
        with pytest.raises(PoolError, match="already released"):
            if through_pool:
                self.pool.release(r["buf"])
            else:
                r["buf"].release()
        for use in (len, memoryview, bytes):
            with pytest.raises(ValueError):
                use(r["buf"])
        assert r["buf"].released
        assert self.pool.stats() == before

    @precondition(built)
    @rule(data=st.data())
    def foreign_release(self, data):
        count(self, "steps")
        before = self.pool.stats()
        with pytest.raises(PoolError):
            self.pool.release(bytearray(self.size))
        with self.other.lease(timeout=0) as theirs:
            with pytest.raises(PoolError, match="another pool"):
                self.pool.release(theirs)
        if self.live():
            mine = data.draw(st.sampled_from(self.live()))["buf"]
            with pytest.raises(PoolError, match="another pool"):
                self.other.release(mine)
        assert self.pool.stats() == before

    @precondition(built)
    @rule()
    def close(self):
        count(self, "steps")
        self.pool.close()
        self.closed = True

    @invariant()
    def matches_model(self):
        if not self.built():
            return
        s = self.pool.stats()
        assert s["in_use"] == self.in_use(), (s, self.records)
        assert s["acquires"] == self.acquires and s["releases"] == self.releases, s
        assert s["available"] == (0 if self.closed else self.capacity - self.in_use())
        assert s["waiting"] == 0 and s["size"] == self.capacity
        for r in self.records:
            if not r["released"]:
                assert memoryview(r["buf"]) == r["pattern"], "two owners of one buffer"
            for v in r["views"]:
                assert v == r["pattern"], "two owners of one buffer"

    def teardown(self):
        if self.built():
            for r in self.records:
                for v in r["views"]:
                    v.release()
                if not r["released"]:
                    r["buf"].release()
            assert self.pool.in_use == 0


class ZeroingBufferPoolMachine(BufferPoolMachine):
    zero_on_release = True


@pytest.mark.parametrize("machine", [ObjectPoolMachine, BufferPoolMachine,
                                     ZeroingBufferPoolMachine],
                         ids=lambda m: m.__name__)
def test_pool_matches_model(machine, knobs):
    examples_wanted = knobs.hypothesis_examples
    before = dict(COUNTS)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples_wanted, stateful_step_count=knobs.hypothesis_steps,
        deadline=None, suppress_health_check=list(HealthCheck)))
    examples = COUNTS.get((machine.__name__, "examples"), 0) - before.get(
        (machine.__name__, "examples"), 0)
    steps = COUNTS.get((machine.__name__, "steps"), 0) - before.get(
        (machine.__name__, "steps"), 0)
    print(f"{machine.__name__}: {examples} examples, {steps} rule steps")
    assert examples >= min(examples_wanted, 10) and steps > examples
