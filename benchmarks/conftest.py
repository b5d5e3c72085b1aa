"""pytest-benchmark suite for pool_ext (not collected by the default ``pytest``
run: pyproject's testpaths is ["tests"]).

    pip install ".[bench]"
    pytest benchmarks --benchmark-autosave            # save a run
    pytest benchmarks --benchmark-compare             # compare with the last one
    pytest benchmarks -k "pair or with" --benchmark-group-by=group

Every group holds pool_ext, an empty method call (pool_ext._floor: the
fastest any extension can be) and the pools people write by hand side by
side, so ratios come from one run.  The cases themselves come from
pool_ext.bench.cases, shared with ``pool-ext bench`` and
benchmarks/callgrind.py.

Environment:
    POOL_BENCH_FILE_MIB   size of the generated file for the read workload (32)
"""
import sys

import pytest

# The checkout's pool_ext/ has no compiled module: if it comes first on
# sys.path (python -m pytest from the repository root), say why, rather than
# failing every file's import.
try:
    import pool_ext._pool  # noqa: F401
except ModuleNotFoundError as e:
    if e.name != "pool_ext._pool":
        raise
    sys.exit("benchmarks/: the pool_ext imported has no compiled module (the source "
             "tree?).  Install it (pip install .) and run the venv's pytest, not "
             "python -m pytest from the repository root.")


def pytest_report_header(config):
    from pool_ext.bench.report import machine
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
