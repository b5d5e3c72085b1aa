"""ObjectPool with psycopg 3 connections to a real PostgreSQL server.

- Transactions from 16 threads through 8 pooled connections while another
  connection kills pooled backends at random (pg_terminate_backend): every
  transaction commits once or raises to its caller, checked against the
  table; no connection is handed out after its backend was killed.
- max_idle replaces connections the server closed (idle_session_timeout).
- A forgotten connection is reported, with the line that acquired it.
- drain() leaves no backend behind.

The server comes from conftest.py (POOL_PG_DSN); see there for skipping.
"""
import threading
import time

import pytest

from helpers import line_of
from pool_ext import ObjectPool, PoolExhausted, PoolLeakWarning

try:
    import psycopg
except ImportError:   # the pg_dsn fixture skips (or fails) and says why
    psycopg = None


def connector(dsn, app_name, **kwargs):
    """A factory: a new connection, stamped with when it was made."""
    def connect():
        conn = psycopg.connect(dsn, application_name=app_name, **kwargs)
        conn.pool_ext_born = time.monotonic()
        return conn
    return connect


def close(conn):
    conn.close()


def backends(admin, app_name):
    return [row[0] for row in admin.execute(
        "select pid from pg_stat_activity where application_name = %s", (app_name,))]


def wait_for_no_backends(admin, app_name, timeout=10.0):
    deadline = time.monotonic() + timeout
    while backends(admin, app_name):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.slow
def test_transactions_while_pooled_backends_are_killed_at_random(
        pg_dsn, pg_admin, app_name, rng, knobs):
    threads_n, per_thread, capacity = 16, knobs.pg_transactions, 8
    table = f"tx_{app_name}"
    pg_admin.execute(f"create table {table} (id bigint not null, backend int not null)")
    pool = ObjectPool(connector(pg_dsn, app_name), capacity,
                      check=lambda c: c.execute("select 1"),
                      reset=lambda c: c.rollback(),
                      destroy=close, name="pg")
    lock = threading.Lock()
    committed, failed, in_doubt = set(), set(), set()
    dead = {}          # id -> connection whose use failed (kept: ids stay unique)
    killed = {}        # backend pid -> when pg_terminate_backend saw it gone
    violations = []
    done = threading.Event()
    kills = []

    def transaction(tx):
        stage = "acquire"
        conn = None
        started = time.monotonic()
        try:
            with pool.lease(timeout=60) as conn:
                pid = conn.info.backend_pid
                with lock:
                    if id(conn) in dead:
                        violations.append(f"tx {tx}: a connection that failed, handed out again")
                    if killed.get(pid, -1.0) > conn.pool_ext_born and killed[pid] < started:
                        violations.append(f"tx {tx}: backend {pid} handed out after it was killed")
                stage = "insert"
                conn.execute(f"insert into {table} values (%s, %s)", (tx, pid))
                stage = "commit"
                conn.commit()
                stage = "committed"
        except psycopg.Error:
            with lock:
                if conn is not None:
                    dead[id(conn)] = conn
                if stage == "committed":       # the release's rollback() raised
                    violations.append(f"tx {tx}: committed, then raised")
                elif stage == "commit":        # the server may or may not have it
                    in_doubt.add(tx)
                else:
                    failed.add(tx)
            return
        with lock:
            committed.add(tx)

    def worker(t):
        for n in range(per_thread):
            transaction(t * per_thread + n)

    def killer():
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            while not done.is_set():
                time.sleep(rng.uniform(0.002, 0.02))
                pids = backends(conn, app_name)
                if not pids:
                    continue
                pid = rng.choice(pids)
                # PostgreSQL 14+: wait (up to 5 s) until the backend has exited
                if conn.execute("select pg_terminate_backend(%s, 5000)", (pid,)).fetchone()[0]:
                    with lock:
                        killed[pid] = time.monotonic()
                    kills.append(pid)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    kill_thread = threading.Thread(target=killer)
    t0 = time.monotonic()
    kill_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    kill_thread.join()
    elapsed = time.monotonic() - t0

    rows = pg_admin.execute(f"select id, count(*) from {table} group by id").fetchall()
    in_table = {tx for tx, _ in rows}
    twice = [tx for tx, n in rows if n > 1]
    stats = pool.stats()
    print(f"{threads_n * per_thread} transactions in {elapsed:.1f} s: {len(committed)} "
          f"committed, {len(failed)} raised before commit, {len(in_doubt)} raised by "
          f"commit() ({len(in_doubt & in_table)} of them committed by the server); "
          f"{len(kills)} backends killed; pool: {stats}")
    assert violations == []
    assert twice == [], "committed twice"
    assert len(committed) + len(failed) + len(in_doubt) == threads_n * per_thread
    assert committed <= in_table, "a transaction that returned is not in the table"
    assert not failed & in_table, "a transaction that raised before commit is in the table"
    assert in_table <= committed | in_doubt
    assert stats["in_use"] == 0 and pool.in_use == 0
    assert kills, "the killer never killed a backend"
    assert len(committed) > threads_n * per_thread // 2
    pool.drain(timeout=30)
    assert wait_for_no_backends(pg_admin, app_name)
    pg_admin.execute(f"drop table {table}")


def test_max_idle_replaces_connections_the_server_closed(pg_dsn, pg_admin, app_name):
    # The server ends a session idle for 1 s; max_idle=0.5 is shorter.
    connect = connector(pg_dsn, app_name, autocommit=True,
                        options="-c idle_session_timeout=1000")
    naive = ObjectPool(connect, 2, destroy=close)
    pool = ObjectPool(connect, 2, max_idle=0.5, destroy=close)
    for p in (naive, pool):
        conns = [p.acquire() for _ in range(2)]
        for conn in conns:
            conn.execute("select 1")
            p.release(conn)
    old = {conn.info.backend_pid for conn in conns}
    time.sleep(1.6)
    conn = naive.acquire()                # the server did close them...
    with pytest.raises(psycopg.OperationalError):
        conn.execute("select 1")
    naive.discard(conn)
    naive.close()
    held = [pool.acquire() for _ in range(2)]   # ...max_idle replaced them
    assert all(c.execute("select 1").fetchone() == (1,) for c in held)
    assert not {c.info.backend_pid for c in held} & old
    assert pool.stats()["expired"] == 2
    for conn in held:
        pool.release(conn)
    pool.close()


def test_the_evictor_keeps_min_idle_live_connections(pg_dsn, pg_admin, app_name):
    connect = connector(pg_dsn, app_name, autocommit=True,
                        options="-c idle_session_timeout=1000")
    pool = ObjectPool(connect, 3, max_idle=0.5, min_idle=2, destroy=close)
    pool.start_evictor(0.1)
    try:
        time.sleep(2.0)                   # twice the server's idle timeout
        assert pool.idle >= 2
        held = [pool.acquire(timeout=5) for _ in range(2)]
        assert all(c.execute("select 1").fetchone() == (1,) for c in held)
        for conn in held:
            pool.release(conn)
    finally:
        pool.stop_evictor()
    assert pool.stats()["expired"] >= 2
    pool.drain(timeout=10)
    assert wait_for_no_backends(pg_admin, app_name)


def test_a_forgotten_connection_is_reported_with_the_line_that_acquired_it(pg_dsn, app_name):
    pool = ObjectPool(connector(pg_dsn, app_name), 1, leak_timeout=0.2,
                      reset=lambda c: c.rollback(), destroy=close, name="orders-db")
    conn = pool.acquire()   # forgotten: never released
    conn.execute("select 1")
    time.sleep(0.3)
    with pytest.warns(PoolLeakWarning) as record:
        with pytest.raises(PoolExhausted) as exhausted:
            pool.acquire(timeout=0.1)     # a caller waits: the leak is reported
    message = str(record[0].message)
    assert "pool 'orders-db'" in message and "leak_timeout=0.2 s" in message
    where = f'line {line_of("# forgotten: never released")}'
    assert where in message and "conn = pool.acquire()   # forgotten" in message
    assert where in str(exhausted.value)  # and PoolExhausted names the holder
    pool.release(conn)
    pool.close()


def test_drain_closes_every_backend_once_all_are_back(pg_dsn, pg_admin, app_name):
    pool = ObjectPool(connector(pg_dsn, app_name), 4, destroy=close)
    conns = [pool.acquire() for _ in range(4)]
    pool.release(conns[0])
    assert len(backends(pg_admin, app_name)) == 4
    releaser = threading.Timer(0.2, lambda: [pool.release(c) for c in conns[1:]])
    releaser.start()
    pool.drain(timeout=30)
    releaser.join()
    assert all(c.closed for c in conns)
    assert wait_for_no_backends(pg_admin, app_name)
