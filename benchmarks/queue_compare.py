"""pool_ext.LifoQueue / Queue against queue.LifoQueue / Queue, and each
library's pool checkout + return with the drop-in against its own queue.

    pip install ".[bench]" urllib3 redis sqlalchemy
    python benchmarks/queue_compare.py [--rounds 7] [--redis-port PORT]
    python benchmarks/queue_compare.py --callgrind     # instructions per get+put

Rows (ns per operation; median of interleaved rounds, each round timing
every contender once in turn, so drift hits them alike; ratio: the
stdlib's / pool_ext's, with the spread of the per-round ratios):

  get+put               q.put(q.get()) on a queue holding one item
  get+put, timeout      q.put(q.get(True, 5.0), True, 5.0): what pools pass
  urllib3               pool._put_conn(pool._get_conn()), HTTPConnectionPool
                        (maxsize=4, block=True); no socket is opened
  urllib3 request       pool.request("GET", "/") to a local http.server
                        (one keep-alive connection)
  redis                 pool.release(pool.get_connection()),
                        BlockingConnectionPool(max_connections=4)
  redis request         client.get("k") against a local redis-server
                        (--redis-port, or one started here if on PATH)
  sqlalchemy            engine.pool.connect().close(), QueuePool on sqlite
  sqlalchemy request    conn.execute(select 1) inside engine.connect()

Single-threaded: the uncontended cost, which is what a checkout pays when
the pool has a connection ready.  Request-level rows include the library's
own code and the round trip, which dominate (said so in docs/queues.md).
"""
import argparse
import http.server
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit

import pool_ext


def timed(stmt, env, number):
    """ns per run of stmt (one timeit run of `number` loops)."""
    t = timeit.Timer(stmt, globals=env)
    return t.timeit(number) / number * 1e9


def compare(name, contenders, rounds, number):
    """contenders: [(label, stmt, env)]; returns the rows' medians."""
    samples = {label: [] for label, _, _ in contenders}
    for _ in range(rounds):
        for label, stmt, env in contenders:
            samples[label].append(timed(stmt, env, number))
    return name, samples


def report(name, samples, ours, theirs):
    a, b = samples[ours], samples[theirs]
    ratios = sorted(y / x for x, y in zip(a, b))
    print(f"{name:<26} {statistics.median(a):>10.0f} {statistics.median(b):>10.0f} "
          f"{statistics.median(b) / statistics.median(a):>7.2f}x "
          f"(rounds {ratios[0]:.2f}-{ratios[-1]:.2f})")


def queue_rows(rounds, number):
    rows = []
    for ours, theirs in ((pool_ext.LifoQueue, queue.LifoQueue), (pool_ext.Queue, queue.Queue)):
        contenders = []
        for label, cls in (("ours", ours), ("theirs", theirs)):
            q = cls(4)
            q.put(object())
            env = {"g": q.get, "p": q.put}
            contenders.append((label, "p(g())", env))
            contenders.append((label + "+t", "p(g(True, 5.0), True, 5.0)", env))
        _, s = compare(ours.__name__, contenders, rounds, number)
        rows.append((f"{ours.__name__} get+put", s, "ours", "theirs"))
        rows.append((f"{ours.__name__} get+put, timeout", s, "ours+t", "theirs+t"))
    return rows


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # one send per response (buffered, flushed by handle_one_request), no
    # Nagle: else the client's delayed ACK costs 40 ms per request
    wbufsize = 65536
    disable_nagle_algorithm = True

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def urllib3_rows(rounds, number):
    import urllib3
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    class Fast(urllib3.HTTPConnectionPool):
        QueueCls = pool_ext.LifoQueue
    contenders, req = [], []
    for label, cls in (("ours", Fast), ("theirs", urllib3.HTTPConnectionPool)):
        pool = cls("127.0.0.1", port, maxsize=4, block=True, timeout=5)
        env = {"g": pool._get_conn, "p": pool._put_conn, "r": pool.request}
        contenders.append((label, "p(g())", env))
        req.append((label, "r('GET', '/')", env))
    _, s = compare("urllib3", contenders, rounds, number)
    _, r = compare("urllib3 request", req, rounds, max(number // 100, 200))
    server.shutdown()
    return [("urllib3 _get_conn+_put_conn", s, "ours", "theirs"),
            ("urllib3 request", r, "ours", "theirs")]


def _start_redis():
    exe = shutil.which("redis-server")
    if exe is None:
        return None, None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = tempfile.mkdtemp()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", d],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    time.sleep(0.3)
    return port, proc


def redis_rows(rounds, number, port):
    import redis
    proc = None
    if port is None:
        port, proc = _start_redis()
    contenders, req = [], []
    for label, qc in (("ours", pool_ext.LifoQueue), ("theirs", queue.LifoQueue)):
        pool = redis.BlockingConnectionPool(host="127.0.0.1", port=port or 6379,
                                            max_connections=4, queue_class=qc)
        env = {"g": pool.get_connection, "p": pool.release,
               "c": redis.Redis(connection_pool=pool)}
        contenders.append((label, "p(g())", env))
        req.append((label, "c.get('k')", env))
    _, s = compare("redis", contenders, rounds, number)
    rows = [("redis get_connection+release", s, "ours", "theirs")]
    if port is not None:
        _, r = compare("redis request", req, rounds, max(number // 100, 200))
        rows.append(("redis request", r, "ours", "theirs"))
    if proc is not None:
        proc.terminate()
    return rows


def sqlalchemy_rows(rounds, number):
    import sqlalchemy as sa
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
    d = tempfile.mkdtemp()
    contenders, req = [], []
    for label, pc in (("ours", FastQueuePool), ("theirs", QueuePool)):
        engine = sa.create_engine(f"sqlite:///{os.path.join(d, label)}.db", poolclass=pc,
                                  pool_size=4, max_overflow=0)
        sel = sa.text("select 1")

        def request(engine=engine, sel=sel):
            with engine.connect() as conn:
                conn.execute(sel).scalar()
        env = {"c": engine.pool.connect, "r": request}
        contenders.append((label, "c().close()", env))
        req.append((label, "r()", env))
    _, s = compare("sqlalchemy", contenders, rounds, max(number // 10, 1000))
    _, r = compare("sqlalchemy request", req, rounds, max(number // 20, 500))
    return [("sqlalchemy connect+close", s, "ours", "theirs"),
            ("sqlalchemy select 1", r, "ours", "theirs")]


CG_CASES = {   # name: (set-up, statement)
    # the floor: an empty method pair in the same calling convention
    # (METH_FASTCALL|METH_KEYWORDS), pool_ext._floor
    "empty method pair": ("from pool_ext._floor import Floor; f = Floor()\n"
                          "class Q:\n    put = None\n"
                          "q = Q(); q.get, q.put = f.acquire_fastcall, f.release_fastcall",
                          "p(g())"),
    "pool_ext.LifoQueue": ("import pool_ext; q = pool_ext.LifoQueue(4)", "p(g())"),
    "queue.LifoQueue": ("import queue; q = queue.LifoQueue(4)", "p(g())"),
    "pool_ext.LifoQueue timeout": ("import pool_ext; q = pool_ext.LifoQueue(4)",
                                   "p(g(True, 5.0), True, 5.0)"),
    "queue.LifoQueue timeout": ("import queue; q = queue.LifoQueue(4)",
                                "p(g(True, 5.0), True, 5.0)"),
    "pool_ext.Queue": ("import pool_ext; q = pool_ext.Queue(4)", "p(g())"),
    "queue.Queue": ("import queue; q = queue.Queue(4)", "p(g())"),
}


def _cg_child(case, n):
    setup, stmt = CG_CASES[case]
    env = {}
    exec(setup, env)
    env["q"].put(object())
    env.update(g=env["q"].get, p=env["q"].put)
    # in a function: g and p are fast locals (module-level code would look
    # each name up in two dicts, a few hundred instructions per round)
    exec(f"def run(g, p):\n    for _ in range({n}):\n        {stmt}\n", env)
    env["run"](env["g"], env["p"])


def _cg_count(case, n):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "cg.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, os.path.abspath(__file__), "--cg-child", case, str(n)],
                       cwd=d, check=True, capture_output=True,
                       env=dict(os.environ, PYTHONHASHSEED="0"))   # (else counts move by 10 %)
        with open(out) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
    raise RuntimeError("no instruction total in callgrind's output")


def callgrind(n):
    """Instructions per get+put: (count(2n) - count(n)) / n, so that start-up
    and imports cancel; includes the loop's own few instructions."""
    print(f"instructions per get+put (callgrind, N={n}; includes the for loop's)")
    for case in CG_CASES:
        per = (_cg_count(case, 2 * n) - _cg_count(case, n)) / n
        print(f"  {case:<30} {per:>8.0f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--number", type=int, default=100_000)
    ap.add_argument("--redis-port", type=int, default=None)
    ap.add_argument("--callgrind", action="store_true", help="instruction counts instead")
    ap.add_argument("--cg-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cg_child:
        return _cg_child(args.cg_child[0], int(args.cg_child[1]))
    if args.callgrind:
        return callgrind(20_000)
    print(f"Python {sys.version.split()[0]}, pool_ext ATOMICS={pool_ext.ATOMICS}, "
          f"{args.rounds} interleaved rounds")
    print(f"{'ns per operation':<26} {'pool_ext':>10} {'own queue':>10} {'ratio':>8}")
    rows = queue_rows(args.rounds, args.number)
    for name, fn in (("urllib3", lambda: urllib3_rows(args.rounds, args.number // 10)),
                     ("redis", lambda: redis_rows(args.rounds, args.number // 10,
                                                  args.redis_port)),
                     ("sqlalchemy", lambda: sqlalchemy_rows(args.rounds, args.number // 10))):
        try:
            rows += fn()
        except ImportError as e:
            print(f"({name}: not installed: {e})")
    for name, samples, ours, theirs in rows:
        report(name, samples, ours, theirs)


if __name__ == "__main__":
    main()
