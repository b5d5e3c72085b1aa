"""A capacity costs memory up front; MAX_CAPACITY bounds the slot indices,
not that memory.  A capacity whose memory cannot be had raises MemoryError
saying what it needed, per slot, and leaves nothing allocated behind.

The failures are made cheap and certain in a child process whose address
space is capped (RLIMIT_AS) at what it uses plus 1 GiB: nothing is touched,
so the test allocates no real memory."""
import sys

import pytest

from helpers import run_script

CAPPED = """
    import re, resource
    from pool_ext import ATOMICS, BufferPool, ObjectPool, MAX_CAPACITY, PoolClosed
    GiB, MiB = 1 << 30, 1 << 20
    # a buffer slot: 64 bytes, a state word and a link (12), and on GIL
    # builds (the plain variant) two cached handles (16)
    BUF64 = 64 + 12 + (16 if ATOMICS.startswith("plain") else 0)

    def vm():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * resource.getpagesize()

    limit = vm() + GiB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def fails(make, pool, n, per_slot):
        before = vm()
        try:
            make()
        except MemoryError as e:
            msg = str(e)
        else:
            raise SystemExit(f"{pool}({n}) was built under a 1 GiB cap")
        assert f"cannot allocate {pool}(capacity={n})" in msg, msg
        assert f"({per_slot} bytes per slot)" in msg, msg
        assert "MAX_CAPACITY (2147483647) only bounds the slot indices" in msg, msg
        # nothing half-built: what was allocated before the failure is gone
        assert vm() - before < 16 * MiB, (pool, n, (vm() - before) // MiB)
        print("ok", pool, n, msg.split(":")[1].split(";")[0])

    # 2**31 - 1 slots: 40 GiB of arrays, then a 64 GiB address map
    fails(lambda: ObjectPool(object, MAX_CAPACITY), "ObjectPool", MAX_CAPACITY, 52)
    fails(lambda: ObjectPool(object, MAX_CAPACITY, max_idle=1, reset=id),
          "ObjectPool", MAX_CAPACITY, 68)
    # 2**25 slots: its arrays (640 MiB) fit, its address map (1 GiB) does not
    fails(lambda: ObjectPool(object, 2**25), "ObjectPool", 2**25, 52)
    fails(lambda: BufferPool(64, MAX_CAPACITY), "BufferPool", MAX_CAPACITY, BUF64)
    # 15M buffers of 64 bytes: the arena (916 MiB) fits, the slot table
    # (172 MiB free-threaded, 401 MiB on GIL builds) does not
    fails(lambda: BufferPool(64, 15_000_000), "BufferPool", 15_000_000, BUF64)

    # A pool whose __init__ failed holds nothing, stays closed, and can be
    # initialised again (no "called twice": its arrays are gone).
    p = ObjectPool.__new__(ObjectPool)
    before = vm()
    try:
        p.__init__(object, 2**25)
    except MemoryError:
        pass
    assert vm() - before < 16 * MiB
    try:
        p.acquire()
    except PoolClosed:
        pass
    else:
        raise SystemExit("a pool whose __init__ failed handed out an object")
    p.__init__(object, 4)
    p.release(p.acquire())
    print("OK")
"""


def test_a_capacity_that_cannot_be_allocated_raises_a_clear_error(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("uses RLIMIT_AS and /proc")
    proc = run_script(tmp_path, CAPPED, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("ok ") == 5
    assert proc.stdout.rstrip().endswith("OK")
