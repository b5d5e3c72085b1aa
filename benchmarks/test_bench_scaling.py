"""O(1): ns per pair from capacity 1 to 1,000,000 with 0%, 50%, 99% of the
slots held, against the linear-scan pool from the Object Pool pattern article
(O(n)).  pool_ext: times per 1000 pairs (us = ns per pair); linear scan: per 10 pairs (us x 100 = ns per pair);
extra_info['ns_per_op'] has ns per pair for both."""
import pytest

from pool_ext import ObjectPool
from pool_ext.bench.cases import LinearScanPool

CAPS = [1, 100, 10_000, 1_000_000]
HELD = [0.0, 0.5, 0.99]


def _held(cap, frac):
    return min(int(cap * frac), cap - 1)


@pytest.mark.parametrize("held", HELD, ids=lambda f: f"{f:.0%}held")
@pytest.mark.parametrize("cap", CAPS)
def test_pool_ext(run_stmt, benchmark, cap, held):
    benchmark.group = f"O(1) pool_ext ObjectPool, {held:.0%} held"
    pool = ObjectPool(object, cap, prefill=cap)
    keep = [pool.acquire() for _ in range(_held(cap, held))]
    run_stmt("pool.release(pool.acquire())", {"pool": pool}, rounds=50)
    for o in keep:
        pool.release(o)


@pytest.mark.parametrize("held", HELD, ids=lambda f: f"{f:.0%}held")
@pytest.mark.parametrize("cap", CAPS)
def test_linear_scan(run_stmt, benchmark, cap, held):
    benchmark.group = f"O(n) the article's linear-scan pool, {held:.0%} held (per 10 pairs)"
    sp = LinearScanPool(cap)
    for c in sp.connections[:_held(cap, held)]:
        c.is_in_use = True
    # one scan of 990k flags takes ~20 ms: 10 per round, fewer rounds when large
    run_stmt("sp.release_connection(sp.get_connection())", {"sp": sp}, number=10,
             rounds=50 if cap * held <= 10_000 else 5)
