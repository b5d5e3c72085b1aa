"""Real workloads, each a pytest-benchmark group:

1. reading a large generated file in 64 KiB chunks: f.readinto(pooled buffer)
   vs f.read(65536), with a trivial consumer (it adds up the lengths);
   POOL_BENCH_FILE_MIB sets the file size (default 32; 256 for the big run).
   The file is in the page cache after it is written, so this measures the
   Python side, not the disk.
2. a numpy hot loop needing a temporary array: pooled buffer + np.frombuffer
   vs np.empty / np.zeros, 4 KiB .. 16 MiB.
3. the Object Pool pattern article's scenario at scale: 16 threads borrowing
   "connections" (objects that cost a little to create) from a pool of 8 or
   1024, vs the article's linear-scan pool and a queue.Queue pool.  The pool is
   built inside each round: the linear scan and the Queue pool create every
   connection up front,
   pool_ext creates them when first needed.
"""
import os
import queue
import threading
import time

import pytest

from pool_ext import BufferPool, ObjectPool
from pool_ext.bench.cases import LinearScanPool

np = pytest.importorskip("numpy")

CHUNK = 64 * 1024


# -- 1. file reading ---------------------------------------------------------

@pytest.fixture(scope="session")
def big_file(tmp_path_factory):
    mib = int(os.environ.get("POOL_BENCH_FILE_MIB", "32"))
    path = tmp_path_factory.mktemp("read") / f"data-{mib}MiB.bin"
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(block)
    return str(path)


def read_bytes(path):
    total = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                return total
            total += len(chunk)


def readinto_pooled_per_chunk(path, bufs):
    # a chunk per acquire: what a reader handing chunks to consumers does
    total = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            buf = bufs.acquire()
            n = f.readinto(buf)
            total += n
            buf.release()
            if not n:
                return total


def readinto_pooled_once(path, bufs):
    total = 0
    with open(path, "rb", buffering=0) as f, bufs.acquire() as buf:
        while True:
            n = f.readinto(buf)
            if not n:
                return total
            total += n


def readinto_bytearray(path, _bufs):
    total = 0
    buf = bytearray(CHUNK)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                return total
            total += n


@pytest.mark.benchmark(group="workload 1: read a file in 64 KiB chunks")
@pytest.mark.parametrize("how", [read_bytes, readinto_pooled_per_chunk,
                                 readinto_pooled_once, readinto_bytearray],
                         ids=lambda f: f.__name__)
def test_read_file(benchmark, big_file, how):
    bufs = BufferPool(CHUNK, 4)
    size = os.path.getsize(big_file)
    args = (big_file,) if how is read_bytes else (big_file, bufs)
    total = benchmark.pedantic(how, args=args, rounds=30, warmup_rounds=2)
    assert total == size
    if benchmark.stats is not None:
        benchmark.extra_info["MiB_per_s"] = size / benchmark.stats.stats.median / (1 << 20)


# -- 2. numpy temporaries -----------------------------------------------------

SIZES = [4 << 10, 64 << 10, 1 << 20, 16 << 20]


def _sz(n):
    return f"{n >> 20}MiB" if n >= 1 << 20 else f"{n >> 10}KiB"


@pytest.mark.parametrize("how", ["pooled_frombuffer", "np_empty", "np_zeros"])
@pytest.mark.parametrize("size", SIZES, ids=_sz)
def test_numpy_temporaries(benchmark, size, how):
    benchmark.group = f"workload 2: numpy temporary of {_sz(size)}"
    n = size // 8
    x = np.arange(n, dtype=np.float64)
    bufs = BufferPool(size, 4)
    f8 = np.float64

    if how == "pooled_frombuffer":
        def step():
            buf = bufs.acquire()
            tmp = np.frombuffer(buf, f8)
            np.multiply(x, 2.0, out=tmp)
            r = tmp[-1]
            del tmp
            buf.release()
            return r
    elif how == "np_empty":
        def step():
            tmp = np.empty(n, f8)
            np.multiply(x, 2.0, out=tmp)
            return tmp[-1]
    else:
        def step():
            tmp = np.zeros(n, f8)
            np.multiply(x, 2.0, out=tmp)
            return tmp[-1]

    assert benchmark(step) == 2.0 * (n - 1)


# -- 3. the article's scenario at scale -------------------------------------------

THREADS = 16
PER_THREAD = 500


class Connection:
    """A 'connection' costing a few microseconds to make."""

    def __init__(self, id):
        self.id = id
        self.is_in_use = False
        self.session = {i: str(i) for i in range(64)}

    def open(self):
        self.is_in_use = True

    def close(self):
        self.is_in_use = False

    def query(self):
        return len(self.session)


def _serve(acquire, release):
    def work():
        for _ in range(PER_THREAD):
            conn = acquire()
            conn.query()
            release(conn)
    ts = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def run_pool_ext(capacity):
    ids = iter(range(1 << 30))
    pool = ObjectPool(lambda: Connection(next(ids)), capacity)
    _serve(pool.acquire, pool.release)


def run_linear_scan(capacity):
    pool = LinearScanPool(capacity, Connection)

    def acquire():   # the article's pool returns None when exhausted: callers retry
        while True:
            conn = pool.get_connection()
            if conn is not None:
                return conn
            time.sleep(0)
    _serve(acquire, pool.release_connection)


def run_queue(capacity):
    q = queue.Queue()
    for i in range(capacity):
        q.put(Connection(i))
    _serve(q.get, q.put)


@pytest.mark.parametrize("how", [run_pool_ext, run_linear_scan, run_queue], ids=lambda f: f.__name__)
@pytest.mark.parametrize("capacity", [8, 1024])
def test_article_scenario(benchmark, capacity, how):
    benchmark.group = (f"workload 3: {THREADS} threads x {PER_THREAD} borrows, "
                       f"{capacity} connections")
    benchmark.pedantic(how, args=(capacity,), rounds=30, warmup_rounds=2)
