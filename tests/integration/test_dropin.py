"""The drop-in queues in the pools of urllib3, redis-py and SQLAlchemy, against
real servers: urllib3 against a local http.server (a thread), redis-py
against a local redis-server (started here; skipped without the binary
unless POOL_REQUIRE_REDIS=1), SQLAlchemy with sqlite and with PostgreSQL
(POOL_PG_DSN, the pg_dsn fixture).  Each checks the pool works, blocks when
exhausted, times out with the library's own error, and hands connections
back for reuse (docs/queues.md gives the one line for each)."""
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

import pool_ext


# -- urllib3 ---------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive: connections are reused
    # one send per response (buffered, flushed by handle_one_request), no
    # Nagle: else the client's delayed ACK costs 40 ms per request
    wbufsize = 65536
    disable_nagle_algorithm = True

    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_urllib3_pool_with_the_lifo_queue(http_server):
    urllib3 = pytest.importorskip("urllib3")

    class Pool(urllib3.HTTPConnectionPool):
        QueueCls = pool_ext.LifoQueue

    with Pool("127.0.0.1", http_server, maxsize=2, block=True, timeout=5) as pool:
        assert isinstance(pool.pool, pool_ext.LifoQueue)
        for _ in range(20):
            assert pool.request("GET", "/").data == b"ok"
        assert pool.num_connections == 1        # one connection, reused (LIFO)
        # threads: never more than maxsize connections, every request served
        errors = []

        def work():
            try:
                for _ in range(25):
                    assert pool.request("GET", "/").data == b"ok"
            except Exception as e:      # pragma: no cover - reported below
                errors.append(e)
        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors and pool.num_connections <= 2
        # exhausted and blocking: the library's EmptyPoolError after pool_timeout
        a = pool._get_conn()
        b = pool._get_conn()
        with pytest.raises(urllib3.exceptions.EmptyPoolError):
            pool._get_conn(timeout=0.05)
        pool._put_conn(a)
        pool._put_conn(b)
        assert pool.pool.qsize() == 2


# -- redis-py -----------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory):
    """A redis-server on 127.0.0.1, in a temporary directory, no persistence."""
    exe = shutil.which("redis-server")
    if exe is None:
        reason = ("redis-server is not installed (Debian: apt-get install redis-server; "
                  ".ci/run installs it)")
        if os.environ.get("POOL_REQUIRE_REDIS") == "1":
            pytest.fail(reason + ", and POOL_REQUIRE_REDIS=1", pytrace=False)
        pytest.skip(reason)
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start (exit code {proc.poll()})")
            time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_redis_blocking_pool_with_the_lifo_queue(redis_port):
    redis = pytest.importorskip("redis")
    pool = redis.BlockingConnectionPool(host="127.0.0.1", port=redis_port, max_connections=2,
                                        timeout=0.05, queue_class=pool_ext.LifoQueue)
    client = redis.Redis(connection_pool=pool)
    try:
        assert isinstance(pool.pool, pool_ext.LifoQueue)
        client.set("k", "v")
        assert client.get("k") == b"v"
        errors = []

        def work(k):
            try:
                for i in range(50):
                    client.set(f"k{k}", i)
                    assert client.get(f"k{k}") == str(i).encode()
            except Exception as e:      # pragma: no cover - reported below
                errors.append(e)
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # (a thread that waited past the 50 ms timeout sees ConnectionError)
        assert all(isinstance(e, redis.ConnectionError) for e in errors), errors
        assert len(pool._connections) <= 2
        # exhausted: the library's ConnectionError after its timeout
        a = pool.get_connection()
        b = pool.get_connection()
        with pytest.raises(redis.ConnectionError):
            pool.get_connection()
        pool.release(a)
        pool.release(b)
        assert pool.get_connection() is b            # LIFO: the last one back
        # pool.queue is read by redis-py's bookkeeping: a snapshot works
        assert len(pool._get_free_connections()) == 1
    finally:
        pool.disconnect()


# -- SQLAlchemy -----------------------------------------------------------------------

def fast_queue_pool():
    """The recipe of docs/queues.md: a QueuePool whose queue is pool_ext's,
    raising SQLAlchemy's own Empty and Full."""
    from sqlalchemy.pool import QueuePool
    from sqlalchemy.util import queue as sqla_queue

    class FifoQueue(pool_ext.Queue):
        Empty, Full = sqla_queue.Empty, sqla_queue.Full
        use_lifo = False

    class LifoQueue(pool_ext.LifoQueue):
        Empty, Full = sqla_queue.Empty, sqla_queue.Full
        use_lifo = True

    class FastQueuePool(QueuePool):
        @staticmethod
        def _queue_class(maxsize=0, use_lifo=False):
            return (LifoQueue if use_lifo else FifoQueue)(maxsize)

    return FastQueuePool


def _exercise_engine(engine, lifo):
    import sqlalchemy as sa
    pool = engine.pool
    assert isinstance(pool._pool, pool_ext.LifoQueue if lifo else pool_ext.Queue)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select 1")).scalar() == 1
    errors = []

    def work():
        try:
            for _ in range(30):
                with engine.connect() as conn:
                    assert conn.execute(sa.text("select 2")).scalar() == 2
        except Exception as e:          # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert pool.checkedout() == 0 and pool.checkedin() <= 2
    # exhausted (pool_size=2, max_overflow=0): SQLAlchemy's TimeoutError
    a, b = engine.connect(), engine.connect()
    with pytest.raises(sa.exc.TimeoutError):
        engine.connect()
    a.close()
    b.close()
    assert pool.checkedin() == 2
    pool.dispose()                      # get(False) until Empty: SQLAlchemy's Empty
    assert pool.checkedin() == 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("select 3")).scalar() == 3


@pytest.mark.parametrize("lifo", [False, True])
def test_sqlalchemy_queue_pool_with_sqlite(tmp_path, lifo):
    sa = pytest.importorskip("sqlalchemy")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}",
                              poolclass=fast_queue_pool(), pool_size=2, max_overflow=0,
                              pool_timeout=0.05, pool_use_lifo=lifo)
    try:
        _exercise_engine(engine, lifo)
    finally:
        engine.dispose()


@pytest.mark.parametrize("lifo", [False, True])
def test_sqlalchemy_queue_pool_with_postgresql(pg_dsn, lifo):
    sa = pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg")
    from psycopg.conninfo import conninfo_to_dict
    engine = sa.create_engine("postgresql+psycopg://",
                              connect_args=conninfo_to_dict(pg_dsn),
                              poolclass=fast_queue_pool(), pool_size=2, max_overflow=0,
                              pool_timeout=0.05, pool_use_lifo=lifo)
    try:
        _exercise_engine(engine, lifo)
    finally:
        engine.dispose()
