"""ArrayPool against numpy, side by side in one run: temporary arrays of
64 B to 64 MiB (made and dropped; made, one byte written per 4 KiB page,
dropped; zeros), and a numpy loop writing into a fresh output array each
iteration: ``np.multiply(a, b, out=arrays.empty_like(a))`` against
``np.multiply(a, b, out=np.empty_like(a))``, 4 MiB and 64 MiB of float64.

    pytest benchmarks/test_bench_arrays.py --benchmark-group-by=group

Times are per 1000 statements (read microseconds as nanoseconds per
statement), except the multiply loop, whose time is per iteration x 1000.
benchmarks/arrays_report.py prints the ratios with their spread.
"""
import pytest

np = pytest.importorskip("numpy")

from pool_ext import ArrayPool
from pool_ext.bench.cases import ARRAY_SIZES, array_cases, size_text

CASES = {(size, key): (stmt, ns) for size in ARRAY_SIZES
         for key, _label, stmt, ns in array_cases(size)}
KINDS = {"empty": ("arr_empty", "np_empty"), "touch": ("arr_touch", "np_touch"),
         "zeros": ("arr_zeros_touch", "np_zeros_touch")}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("size", ARRAY_SIZES, ids=size_text)
@pytest.mark.parametrize("side", [0, 1], ids=["ArrayPool", "numpy"])
def test_arrays(benchmark, run_stmt, kind, size, side):
    benchmark.group = f"arrays {kind}: {size_text(size)}"
    stmt, ns = CASES[(size, KINDS[kind][side])]
    big = size >= 1 << 24
    run_stmt(stmt, ns, number=20 if big else 1000, rounds=10 if big else 100)


def multiply_case(nbytes, pooled):
    n = nbytes // 8
    ns = dict(np=np, arrays=ArrayPool(), a=np.ones(n), b=np.full(n, 2.0))
    stmt = ("np.multiply(a, b, out=arrays.empty_like(a))" if pooled
            else "np.multiply(a, b, out=np.empty_like(a))")
    return stmt, ns


@pytest.mark.parametrize("size", [4 << 20, 64 << 20], ids=size_text)
@pytest.mark.parametrize("pooled", [True, False], ids=["ArrayPool", "numpy"])
def test_multiply_loop(benchmark, run_stmt, size, pooled):
    benchmark.group = f"np.multiply(a, b, out=...empty_like(a)), {size_text(size)} float64"
    stmt, ns = multiply_case(size, pooled)
    run_stmt(stmt, ns, number=10, rounds=10 if size > 4 << 20 else 50)
