"""Eight PostgreSQL connections shared by 16 threads, with pool_ext.

    python examples/postgres_pool.py "host=/tmp/pg dbname=postgres user=postgres"

(or set POOL_PG_DSN; `eval "$(bash tools/pg_server.sh start /tmp/pg)"` starts
a throwaway server).  Needs psycopg 3: pip install "psycopg[binary]".
"""
import os
import sys
import threading

dsn = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("POOL_PG_DSN")
if not dsn:
    sys.exit('usage: python examples/postgres_pool.py "host=/tmp/pg dbname=postgres '
             'user=postgres"\n(or set POOL_PG_DSN; eval "$(bash tools/pg_server.sh start '
             '/tmp/pg)" starts a throwaway server)')

import psycopg  # noqa: E402  (after the usage line: it may be missing too)

from pool_ext import ObjectPool  # noqa: E402

pool = ObjectPool(
    lambda: psycopg.connect(dsn, application_name="pool_ext example"),
    capacity=8,
    check=lambda conn: conn.execute("select 1"),  # before each hand-out: alive?
    reset=lambda conn: conn.rollback(),            # on release: no open transaction
    destroy=lambda conn: conn.close(),             # discarded, expired, or closed
    max_idle=60,            # below the server's and NAT's idle timeouts
    max_lifetime=30 * 60,   # renew connections now and then
    leak_timeout=10,        # warn about a connection held longer than 10 s
    name="orders-db",
)

with pool.lease() as conn:
    conn.execute("drop table if exists pool_ext_example")
    conn.execute("create table pool_ext_example (thread int, n int)")
    conn.commit()


def work(thread):
    for n in range(50):
        with pool.lease(timeout=10) as conn:   # released on exit, also on an exception
            conn.execute("insert into pool_ext_example values (%s, %s)", (thread, n))
            conn.commit()


threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()

with pool.lease() as conn:
    print("rows:", conn.execute("select count(*) from pool_ext_example").fetchone()[0])
    conn.execute("drop table pool_ext_example")
    conn.commit()
stats = pool.stats()
print(pool)
print(f"connections made: {stats['creations']}, waits: {stats['waits']}, "
      f"longest wait: {stats['wait_ns_max'] / 1e6:.1f} ms")
pool.drain(timeout=10)   # every connection back, then all closed
