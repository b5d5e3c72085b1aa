"""pool_ext.ObjectPool, asyncpg's own pool and an asyncio.Queue of
connections on a real PostgreSQL server (POOL_PG_DSN; tools/pg_server.sh
starts one): 64 tasks sharing 8 asyncpg connections, K hand-offs each, with
``await asyncio.sleep(0)`` (no query: the pool's cost under contention) or
``select 1`` inside the lease, under asyncio's loop and uvloop.  The
contenders and workloads are those of benchmarks/asyncpg_compare.py, which
prints the comparison as a table (with ratios, the floor without a pool, and
the loop iterations per hand-off)."""
import asyncio
import os

import pytest

pytest.importorskip("asyncpg")
if not os.environ.get("POOL_PG_DSN"):
    pytest.skip("no PostgreSQL server: set POOL_PG_DSN (tools/pg_server.sh starts one)",
                allow_module_level=True)

import asyncpg_compare as A   # noqa: E402  (benchmarks/ is on sys.path: pytest's rootdir import)

KW = A.asyncpg_kwargs(os.environ["POOL_PG_DSN"])
KW["server_settings"] = {"application_name": A.APP_NAME}
K = {"yield": 50, "select 1": 10}

def _loops():
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return ["asyncio"]
    return ["asyncio", "uvloop"]


@pytest.fixture(params=_loops())
def loop(request):
    loop = A.new_loop(request.param)
    asyncio.set_event_loop(loop)
    yield request.param, loop
    asyncio.set_event_loop(None)
    loop.close()


@pytest.mark.parametrize("body", list(K))
@pytest.mark.parametrize("cls", [A.PoolExt, A.AsyncpgPool, A.QueuePool, A.QueueInline],
                         ids=lambda cls: cls.name)
def test_hand_off(benchmark, loop, cls, body):
    """Per round: 64 tasks x K[body] hand-offs; extra_info['us_per_hand_off']."""
    kind, ev = loop
    target = cls(KW)
    ev.run_until_complete(target.open())
    try:
        k = K[body]
        benchmark.group = (f"asyncpg: {A.TASKS} tasks x {k} hand-offs, {A.SIZE} connections, "
                           f"body {body!r}, {kind}")

        def one_round():
            ev.run_until_complete(A.run(target, body, k))

        benchmark.pedantic(one_round, rounds=10, warmup_rounds=1)
        if benchmark.stats is not None:
            benchmark.extra_info["us_per_hand_off"] = (
                benchmark.stats.stats.median / (A.TASKS * k) * 1e6)
    finally:
        ev.run_until_complete(target.close())
