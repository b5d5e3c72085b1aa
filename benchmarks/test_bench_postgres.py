"""psycopg_pool.ConnectionPool and pool_ext.ObjectPool on a real PostgreSQL
server (POOL_PG_DSN; tools/pg_server.sh starts one): an empty checkout and
check-in (each pool's own cost), and `select 1` transactions from 4 threads
on 4 connections, against bare connections.  The workloads are those of
benchmarks/pg_compare.py, which prints the comparison as a table."""
import os

import pytest

pytest.importorskip("psycopg_pool")
if not os.environ.get("POOL_PG_DSN"):
    pytest.skip("no PostgreSQL server: set POOL_PG_DSN (tools/pg_server.sh starts one)",
                allow_module_level=True)

import pg_compare as P   # noqa: E402  (benchmarks/ is on sys.path: pytest's rootdir import)

DSN = os.environ["POOL_PG_DSN"]
CHECKOUTS = 2000
TRANSACTIONS = 2000


@pytest.fixture(params=P.POOLS, ids=lambda cls: cls.name)
def one_connection_pool(request):
    target = request.param(DSN, 1)
    yield target
    target.close()


def test_checkout(benchmark, one_connection_pool):
    """Per round: CHECKOUTS empty checkouts; read microseconds as ns * 1000 / CHECKOUTS."""
    benchmark.group = f"postgres: {CHECKOUTS} empty checkouts, one thread"
    benchmark.pedantic(one_connection_pool.checkout, args=(CHECKOUTS,), rounds=20,
                       warmup_rounds=1)
    if benchmark.stats is not None:
        benchmark.extra_info["us_per_checkout"] = benchmark.stats.stats.median / CHECKOUTS * 1e6


@pytest.mark.parametrize("cls", [P.Bare] + P.POOLS, ids=lambda cls: cls.name)
def test_select_1_four_threads(benchmark, cls):
    target = cls(DSN, 4)
    try:
        benchmark.group = f"postgres: {TRANSACTIONS} x select 1, 4 threads, 4 connections"
        benchmark.pedantic(P.run_threads, args=(target, 4, TRANSACTIONS), rounds=10,
                           warmup_rounds=1)
        if benchmark.stats is not None:
            benchmark.extra_info["tx_per_s"] = TRANSACTIONS / benchmark.stats.stats.median
    finally:
        target.close()
