"""pytest-benchmark suite for pool_ext (not collected by the default ``pytest``
run: pyproject's testpaths is ["tests"]).

    pip install ".[bench]"
    pytest benchmarks --benchmark-autosave            # save a run
    pytest benchmarks --benchmark-compare             # compare with the last one
    pytest benchmarks -k "pair or with" --benchmark-group-by=group

Every group holds pool_ext, the empty-bodied floor (pool_ext._floor) and the
peers side by side, so ratios come from one run.  The cases themselves come
from pool_ext._bench, shared with ``python -m pool_ext bench`` and
benchmarks/callgrind.py.

Environment:
    POOL_BENCH_FILE_MIB   size of the generated file for the read workload (32)
"""
import os
import sys

import pytest

import pool_ext

HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.dirname(pool_ext.__file__) == os.path.join(os.path.dirname(HERE), "pool_ext"):
    # The source tree has no compiled _pool: this would fail at once.
    sys.exit("benchmarks/: run with an installed pool_ext (the venv's pytest, "
             "not python -m pytest from the repository root)")


def pytest_report_header(config):
    from pool_ext._bench import machine
    m = machine()
    return [f"pool_ext {m['pool_ext']}, core atomics: {m['atomics']}, "
            f"numpy {m['numpy']}, {m['cpus']} CPUs, load {m['loadavg']}"]


NUMBER = 1000


@pytest.fixture
def run_stmt(benchmark):
    """Benchmarks one statement as timeit runs it (no wrapper call per
    iteration).  A round runs it NUMBER = 1000 times, so pytest-benchmark's
    times are per 1000 statements: read its microseconds as nanoseconds per
    statement.  extra_info['ns_per_op'] holds the median per statement."""
    import timeit

    def run(stmt, ns, number=NUMBER, rounds=200):
        t = timeit.Timer(stmt, globals=ns)
        benchmark.extra_info["number"] = number
        benchmark.extra_info["stmt"] = stmt
        benchmark.pedantic(t.timeit, args=(number,), rounds=rounds, warmup_rounds=2,
                           iterations=1)
        if benchmark.stats is not None:   # None under --benchmark-disable
            benchmark.extra_info["ns_per_op"] = benchmark.stats.stats.median / number * 1e9
    return run
