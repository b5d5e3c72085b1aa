"""ArrayPool against a model: random sequences of hand-outs (arrays, views,
PooledBuffers, borrow()), drops and trims, each checked against a pure-Python
model of the size classes.  Any divergence is a bug.

The model knows, per size class, the stack of cached block addresses (the
cache is LIFO), the blocks out, and the bytes retained; so it predicts
every hit and miss, the exact block a hit returns, what a give-back keeps
(the class has room and the budget allows) and what trim() frees (largest
class first).  retained_bytes <= max_bytes is checked after every step, and
every live block carries its own pattern, so two owners of one block cannot
go unnoticed.

POOL_HYPOTHESIS_EXAMPLES (default 100 here: four machines) sets
max_examples; each example runs up to POOL_HYPOTHESIS_STEPS (default 40)
steps.
"""
import os

import pytest

hypothesis = pytest.importorskip("hypothesis")
np = pytest.importorskip("numpy")
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, \
    run_state_machine_as_test

from pool_ext import ArrayPool

EXAMPLES = int(os.environ.get("POOL_HYPOTHESIS_EXAMPLES", "100"))
STEPS = int(os.environ.get("POOL_HYPOTHESIS_STEPS", "40"))
SETTINGS = settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
                    suppress_health_check=list(HealthCheck))
SLOTS = 64   # cache slots per class (src/pool_classes.h, POOL_CLASSES_SLOTS)


def make_machine(max_bytes, max_size, clear):
    class ArrayPoolMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.pool = ArrayPool(max_bytes=max_bytes, max_size=max_size, clear=clear)
            top = max(max_size - 1, 1).bit_length() if max_size else max(max_bytes, 1).bit_length() - 1
            self.sizes = [1 << s for s in range(6, max(top, 6) + 1)]
            self.cached = {size: [] for size in self.sizes}   # stacks of addresses
            self.out = {size: 0 for size in self.sizes}
            self.oversize_out = 0
            self.retained = 0
            self.hits = self.misses = 0
            self.live = []        # (kind, obj, block size, pattern, nbytes, extra refs)
            self.serial = 0

        def block_size(self, n):
            for size in self.sizes:
                if n <= size:
                    return size
            return None   # oversize

        def take(self, n):
            size = self.block_size(n)
            if size is not None and self.cached[size]:
                self.hits += 1
                self.retained -= size
                return size, self.cached[size].pop()
            self.misses += 1
            return size, None

        def give(self, size, addr):
            if size is None:
                self.oversize_out -= 1
                return
            self.out[size] -= 1
            if self.retained + size <= max_bytes and len(self.cached[size]) < SLOTS:
                self.cached[size].append(addr)
                self.retained += size

        def handed(self, kind, obj, n, size, expect, view):
            addr = view.ctypes.data if n else None
            if expect is not None and n:
                assert addr == expect, "a hit must return the last block cached in its class"
                if clear == "on_release":
                    assert not view[:n].any()
                if clear == "poison" and kind != "zeros":
                    assert (view[:n] == 0xDB).all()
            if size is None:
                self.oversize_out += 1
            else:
                self.out[size] += 1
            self.serial += 1
            pattern = self.serial % 251
            view[:n] = pattern
            self.live.append(["buffer" if kind == "buffer" else "array", obj, size, pattern, n,
                              [], addr])

        @rule(n=st.integers(0, 100_000), dtype=st.sampled_from([np.uint8, np.float64]),
              zeros=st.booleans())
        def empty(self, n, dtype, zeros):
            count = n // np.dtype(dtype).itemsize
            nbytes = count * np.dtype(dtype).itemsize
            if max_size and nbytes > max_size:
                with pytest.raises(ValueError):
                    self.pool.empty(count, dtype)
                return
            size, expect = self.take(nbytes)
            a = (self.pool.zeros if zeros else self.pool.empty)(count, dtype)
            if zeros:
                assert not a.any()
            self.handed("zeros" if zeros else "array", a, nbytes, size, expect, a.view(np.uint8))

        @rule(n=st.integers(0, 100_000))
        def acquire(self, n):
            if max_size and n > max_size:
                with pytest.raises(ValueError):
                    self.pool.acquire(n)
                return
            size, expect = self.take(n)
            buf = self.pool.acquire(n)
            assert len(buf) == n
            self.handed("buffer", buf, n, size, expect, np.frombuffer(buf, np.uint8))

        @rule(n=st.integers(1, 5000), keep_view=st.booleans())
        def borrow(self, n, keep_view):
            size, expect = self.take(n)
            with self.pool.borrow(n, np.uint8) as a:
                if expect is not None:
                    assert a.ctypes.data == expect
                addr = a.ctypes.data
                a[:] = 7
                v = a[1:] if keep_view else None
            if size is None:
                self.oversize_out += 1
            else:
                self.out[size] += 1
            if keep_view:
                self.live.append(["array", a, size, 7, n, [v], addr])
            else:
                assert a.size == 0
                self.give(size, addr)

        @precondition(lambda self: self.live)
        @rule(i=st.integers(0, 1000), kind=st.sampled_from(["view", "T", "asarray", "mv"]))
        def derive(self, i, kind):
            item = self.live[i % len(self.live)]
            if item[0] != "array":
                return
            a = item[1]
            item[5].append({"view": lambda: a[::2], "T": lambda: a.T, "asarray": lambda: np.asarray(a),
                            "mv": lambda: memoryview(a)}[kind]())

        @precondition(lambda self: self.live)
        @rule(i=st.integers(0, 1000), views_first=st.booleans(), export=st.booleans())
        def drop(self, i, views_first, export):
            item = self.live.pop(i % len(self.live))
            kind, obj, size, pattern, n, extra, addr = item
            if kind == "buffer":
                exp = np.frombuffer(obj, np.uint8) if export else None
                obj.release()
                assert obj.released
                if exp is not None:
                    assert self.out_of(size) >= 1   # deferred while exported
                    del exp
            else:
                if views_first:
                    extra.clear()
                del obj, item
                if extra:
                    assert self.out_of(size) >= 1   # a view keeps it out
                    for e in extra:
                        if isinstance(e, memoryview):
                            e.release()
                    extra.clear()
            self.give(size, addr)

        @staticmethod
        def let_go(item):
            for e in item[5]:
                if isinstance(e, memoryview):
                    e.release()
            if item[0] == "buffer":
                item[1].release()

        def out_of(self, size):
            s = self.pool.stats()
            return s["oversize_out"] if size is None else s["classes"][size]["out"]

        @rule(goal=st.sampled_from([0, 1000, 10_000, 100_000, 1 << 20]))
        def trim(self, goal):
            freed = 0
            for size in reversed(self.sizes):
                while self.retained > goal and self.cached[size]:
                    self.cached[size].pop()
                    self.retained -= size
                    freed += size
            assert self.pool.trim(goal) == freed

        @invariant()
        def matches_model(self):
            s = self.pool.stats()
            assert s["retained_bytes"] == self.retained <= max_bytes
            assert s["hits"] == self.hits and s["misses"] == self.misses
            assert s["oversize_out"] == self.oversize_out
            for size in self.sizes:
                assert s["classes"][size] == {"cached": len(self.cached[size]),
                                              "out": self.out[size]}, size

        @invariant()
        def patterns_intact(self):
            for kind, obj, size, pattern, n, extra, addr in self.live:
                view = obj.view(np.uint8) if kind == "array" else np.frombuffer(obj, np.uint8)
                if kind == "array" and obj.size == 0:
                    continue
                assert (view[:n] == pattern).all(), "a live block was written by another owner"

        def teardown(self):
            while self.live:
                self.let_go(self.live.pop())
            self.pool.trim()
            assert self.pool.stats()["blocks"] == 0

    return ArrayPoolMachine


@pytest.mark.parametrize("max_bytes, max_size, clear", [
    (64 << 10, None, "never"),
    (300_000, None, "on_release"),
    (1 << 20, 50_000, "poison"),
    (0, None, "never"),
])
def test_arraypool_matches_model(max_bytes, max_size, clear):
    run_state_machine_as_test(make_machine(max_bytes, max_size, clear), settings=SETTINGS)
