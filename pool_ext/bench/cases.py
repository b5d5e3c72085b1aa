"""What ``pool-ext bench`` times: the statements, and the pools they run on.

Each case is a tuple ``(key, label, statement, namespace)``: ``statement`` is
run by ``timeit`` with ``namespace`` as its globals, so every case is timed
the same way and benchmarks/ (pytest-benchmark and callgrind) reuse them.
The keys are short and stable; the labels say what each case is.

>>> import timeit
>>> key, label, stmt, ns = core_cases()[0]
>>> seconds = timeit.Timer(stmt, globals=ns).timeit(1000)

Besides pool_ext's pools, the cases run the pools people write by hand in
Python (defined below, so every number is measured on the same code):
a list behind a ``threading.Lock``, ``queue.SimpleQueue`` and
``queue.LifoQueue`` pools, and the linear-scan pool from the Object Pool
pattern article, which looks for a free connection by checking each one's
``is_in_use`` flag in turn.
"""
import collections
import queue
import sys
import threading

from pool_ext import ArrayPool, BufferPool, ObjectPool, SharedBufferPool
from pool_ext._floor import Floor

#: The references each time is divided by.  An empty method call is the
#: fastest any extension can be (pool_ext._floor: the pools' call shapes
#: with nothing inside, compiled the same way); with-blocks are compared
#: with an empty with-block, and the pools written in Python with ObjectPool.
EMPTY_CALL = "floor_pair"
EMPTY_WITH = "floor_with"
OBJECT_POOL = "obj_pair"
#: Python's containers and the pools written in Python.
PYTHON_POOLS = ("list", "deque", "simplequeue", "locklist", "lifoqueue", "seed64",
                "seed1024")

LINEAR_SCAN = "the linear-scan pool from the Object Pool pattern article"


def numpy_or_none():
    """numpy, or None: optional, and imported only when a case needs it (its
    BLAS threads would otherwise add noise to callgrind's instruction counts)."""
    try:
        import numpy
    except ImportError:  # pragma: no cover
        return None
    return numpy


# ---------------------------------------------------------------------------
# The pools people write by hand
# ---------------------------------------------------------------------------

class Connection:
    """The article's Connection, without its print() calls."""

    def __init__(self, id):
        self.id = id
        self.is_in_use = False

    def open(self):
        self.is_in_use = True

    def close(self):
        self.is_in_use = False


class LinearScanPool:
    """The article's ConnectionPool: get_connection() returns the first
    connection whose is_in_use flag is clear, so its cost grows with the
    connections in use (its logic as published; the prints removed, so they
    are not what is timed)."""

    def __init__(self, size, factory=Connection):
        self.size = size
        self.connections = [factory(i) for i in range(size)]

    def get_connection(self):
        for conn in self.connections:
            if not conn.is_in_use:
                conn.open()
                return conn
        return None   # the article prints "No available connections."

    def release_connection(self, conn):
        conn.close()

    # the usual names, for the threaded workload
    acquire = get_connection
    release = release_connection


class LockListPool:
    """A list behind a threading.Lock: the usual hand-written pool."""

    def __init__(self, factory, capacity):
        self._lock = threading.Lock()
        self._items = [factory() for _ in range(capacity)]

    def acquire(self):
        with self._lock:
            return self._items.pop()

    def release(self, obj):
        with self._lock:
            self._items.append(obj)


class _QueuePool:
    def __init__(self, q, factory, capacity):
        for _ in range(capacity):
            q.put(factory())
        self.acquire = q.get      # bound methods: no wrapper frame is timed
        self.release = q.put


def lifo_queue_pool(factory, capacity):
    """A pool that is a queue.LifoQueue (a Condition and a lock inside)."""
    return _QueuePool(queue.LifoQueue(), factory, capacity)


def simple_queue_pool(factory, capacity):
    """A pool that is a queue.SimpleQueue (written in C)."""
    return _QueuePool(queue.SimpleQueue(), factory, capacity)


def half_used_linear_scan_pool(size):
    """A LinearScanPool with its first half in use, so every get scans half."""
    pool = LinearScanPool(size)
    for conn in pool.connections[: size // 2]:
        conn.is_in_use = True
    return pool


# ---------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------

WITH = "with {0} as o:\n    pass"
PAIR = "{0}.release({0}.acquire())"


def core_cases(capacity=64, buffer_size=1 << 20):
    """One acquire + release (or one with-block) per statement: pool_ext,
    the empty references, Python's containers and the hand-written pools."""
    ns = dict(f=Floor(), pool=ObjectPool(object, capacity, prefill=capacity),
              bufs=BufferPool(buffer_size, capacity),
              lst=[object() for _ in range(capacity)],
              d=collections.deque(object() for _ in range(capacity)),
              sq=simple_queue_pool(object, capacity),
              ll=LockListPool(object, capacity),
              lq=lifo_queue_pool(object, capacity),
              scan64=half_used_linear_scan_pool(64),
              scan1024=half_used_linear_scan_pool(1024))
    scan = "scan{0}.release_connection(scan{0}.get_connection())"
    return [
        ("floor_pair", "empty method call (the fastest any extension can be)",
         PAIR.format("f"), ns),
        ("floor_pair_fastcall", "empty method call, Cython's default calling convention "
         "(accepts keywords)", "f.release_fastcall(f.acquire_fastcall())", ns),
        ("floor_pair_own", "empty method call in pool_ext's own conventions (acquire "
         "accepts keywords, release(obj) is METH_O)", "f.release(f.acquire_fastcall())", ns),
        ("timeit_loop", "the timeit loop alone (an empty statement): in every figure",
         "pass", ns),
        ("floor_with", "empty with-block (the fastest any extension can be)",
         WITH.format("f.lease()"), ns),
        ("floor_with_self", "empty with-block on the object itself", WITH.format("f"), ns),
        ("obj_pair", "ObjectPool: pool.release(pool.acquire())", PAIR.format("pool"), ns),
        ("obj_try_pair", "ObjectPool: pool.release(pool.try_acquire())",
         "pool.release(pool.try_acquire())", ns),
        ("obj_with", "ObjectPool: with pool.lease() as o", WITH.format("pool.lease()"), ns),
        ("buf_pair", "BufferPool: bufs.acquire().release()", "bufs.acquire().release()", ns),
        ("buf_with", "BufferPool: with bufs.acquire() as b", WITH.format("bufs.acquire()"), ns),
        # what urllib3, redis-py and SQLAlchemy call: always with a timeout
        ("obj_pair_t", "ObjectPool: pool.release(pool.acquire(5.0))",
         "pool.release(pool.acquire(5.0))", ns),
        ("obj_pair_kw", "ObjectPool: pool.release(pool.acquire(timeout=5.0))",
         "pool.release(pool.acquire(timeout=5.0))", ns),
        ("obj_pair_0", "ObjectPool: pool.release(pool.acquire(0))",
         "pool.release(pool.acquire(0))", ns),
        ("obj_with_t", "ObjectPool: with pool.lease(5.0) as o", WITH.format("pool.lease(5.0)"), ns),
        ("buf_pair_t", "BufferPool: bufs.acquire(5.0).release()",
         "bufs.acquire(5.0).release()", ns),
        ("list", "list, no lock: lst.append(lst.pop())", "lst.append(lst.pop())", ns),
        ("deque", "collections.deque, no lock: d.append(d.pop())", "d.append(d.pop())", ns),
        ("simplequeue", "queue.SimpleQueue as a pool", PAIR.format("sq"), ns),
        ("locklist", "list + threading.Lock as a pool", PAIR.format("ll"), ns),
        ("lifoqueue", "queue.LifoQueue as a pool", PAIR.format("lq"), ns),
        ("seed64", f"{LINEAR_SCAN}, 64 slots (32 in use)", scan.format(64), ns),
        ("seed1024", f"{LINEAR_SCAN}, 1024 slots (512 in use)", scan.format(1024), ns),
    ]


def path_cases(buffer_size=1 << 20, capacity=8):
    """What a user does with scratch memory: get a buffer, view it, give it
    back; from a BufferPool, or freshly allocated."""
    np = numpy_or_none()
    ns = dict(bufs=BufferPool(buffer_size, capacity), ba=bytearray(buffer_size),
              size=buffer_size, np=np, memoryview=memoryview, bytearray=bytearray)
    cases = [
        ("path_mv", "BufferPool: acquire, memoryview, release",
         "b = bufs.acquire(); memoryview(b).release(); b.release()", ns),
        ("path_mv_reuse", "one reused bytearray: memoryview only",
         "memoryview(ba).release()", ns),
        ("path_bytearray", "new bytearray + memoryview", "memoryview(bytearray(size)).release()",
         ns),
    ]
    if np is not None:
        ns["u8"] = np.uint8
        cases += [
            ("path_np", "BufferPool: acquire, numpy.frombuffer, release",
             "b = bufs.acquire(); a = np.frombuffer(b, u8); del a; b.release()", ns),
            ("path_np_empty", "new numpy.empty", "np.empty(size, u8)", ns),
            ("path_np_zeros", "new numpy.zeros", "np.zeros(size, u8)", ns),
            # the same, writing one byte per 4 KiB page: fresh memory pays a
            # page fault per page (and a large np.empty is a fresh mmap)
            ("path_np_touch", "BufferPool + numpy.frombuffer, writing each 4 KiB page",
             "b = bufs.acquire(); a = np.frombuffer(b, u8); a[::4096] = 1; del a; "
             "b.release()", ns),
            ("path_np_empty_touch", "new numpy.empty, writing each 4 KiB page",
             "a = np.empty(size, u8); a[::4096] = 1", ns),
        ]
    return cases


def shared_supported():
    """'' if SharedBufferPool works here, else why not (it needs Linux)."""
    if not sys.platform.startswith("linux"):
        return f"SharedBufferPool needs Linux; this is {sys.platform}"
    try:
        SharedBufferPool(64, 1).close()
    except (NotImplementedError, OSError) as e:   # no memfd, no /proc
        return f"SharedBufferPool does not work here: {e}"
    return ""


def shared_cases(buffer_size=1 << 20, capacity=64, send_size=1 << 16, sends=True):
    """SharedBufferPool's pairs beside BufferPool's (the same statements)
    and, with sends, one in-process send + receive (loads(dumps(x)): what a
    hand-off between processes costs besides the transport) of a held
    block, of an array from empty(), of what multiprocessing.shared_memory
    used by hand sends (a name, an offset and a length; the receiver makes
    an ndarray over its attachment, here an mmap as SharedMemory.buf is) and
    of a plain ndarray (a copy), each of send_size bytes.  [] where
    SharedBufferPool does not work."""
    if shared_supported():
        return []
    import mmap
    import pickle
    ns = dict(shm=SharedBufferPool(buffer_size, capacity),
              bufs=BufferPool(buffer_size, capacity))
    cases = [
        ("shm_pair", "SharedBufferPool: shm.acquire().release()", "shm.acquire().release()", ns),
        ("buf_pair", "BufferPool: bufs.acquire().release()", "bufs.acquire().release()", ns),
        ("shm_try_pair", "SharedBufferPool: shm.try_acquire().release()",
         "shm.try_acquire().release()", ns),
        ("shm_with", "SharedBufferPool: with shm.acquire() as b", WITH.format("shm.acquire()"), ns),
        ("buf_with", "BufferPool: with bufs.acquire() as b", WITH.format("bufs.acquire()"), ns),
    ]
    if not sends:
        return cases
    sent = SharedBufferPool(send_size, 4)
    ns.update(loads=pickle.loads, dumps=pickle.dumps, held=[sent.acquire()])
    cases.append(("shm_send", f"SharedBuffer of {size_text(send_size)}: loads(dumps(b))",
                  "held[0] = loads(dumps(held[0]))", ns))
    np = numpy_or_none()
    if np is not None:
        n = send_size // 8
        ns.update(arr=[sent.empty((n,), np.float64)], plain=np.zeros(n), f8=np.float64,
                  by_hand=("psm_0123abcd", 0, n), ndarray=np.ndarray,
                  attached={"psm_0123abcd": memoryview(mmap.mmap(-1, send_size))})
        cases += [
            ("shm_send_array", f"SharedBufferPool.empty() array of {size_text(send_size)}: "
             "loads(dumps(a))", "arr[0] = loads(dumps(arr[0]))", ns),
            ("shm_by_hand_send", f"shared_memory by hand, {size_text(send_size)}: "
             "loads(dumps((name, offset, n))), an ndarray over the attachment",
             "name, off, k = loads(dumps(by_hand)); "
             "a = ndarray((k,), f8, buffer=attached[name], offset=off); del a", ns),
            ("shm_plain_send", f"plain ndarray of {size_text(send_size)}: loads(dumps(a)) "
             "(a copy)", "loads(dumps(plain))", ns),
        ]
    return cases


#: Array sizes of ``pool-ext bench``'s ArrayPool rows: 64 B to 64 MiB.
ARRAY_SIZES = [64, 1 << 12, 1 << 16, 1 << 20, 1 << 24, 1 << 26]


def array_cases(nbytes):
    """Temporary arrays of nbytes bytes: ArrayPool's against numpy's, made
    and dropped (pairs: (pooled key, numpy key)).  "touch" writes one byte
    per 4 KiB page, as a real temporary does: new memory pays a page fault
    per page, and numpy gets memory of 32 MiB and more (glibc's mmap
    threshold) from the OS anew each time.  None without numpy."""
    np = numpy_or_none()
    if np is None:
        return None
    ns = dict(np=np, arrays=ArrayPool(), n=nbytes, u8=np.uint8)
    return [
        ("arr_empty", "ArrayPool: arrays.empty(n, uint8), dropped", "arrays.empty(n, u8)", ns),
        ("np_empty", "numpy.empty(n, uint8), dropped", "np.empty(n, u8)", ns),
        ("arr_touch", "ArrayPool: empty, write each 4 KiB page, drop",
         "a = arrays.empty(n, u8); a[::4096] = 1; del a", ns),
        ("np_touch", "numpy.empty, write each 4 KiB page, drop",
         "a = np.empty(n, u8); a[::4096] = 1; del a", ns),
        # zeros written to, on both sides: numpy.zeros gets zeroed pages from
        # the OS lazily (calloc), so it pays when its pages are first written;
        # arrays.zeros clears a resident block at once
        ("arr_zeros_touch", "ArrayPool: zeros, write each 4 KiB page, drop",
         "a = arrays.zeros(n, u8); a[::4096] = 1; del a", ns),
        ("np_zeros_touch", "numpy.zeros, write each 4 KiB page, drop",
         "a = np.zeros(n, u8); a[::4096] = 1; del a", ns),
    ]


#: ArrayPool's rows and the numpy row each is divided by.
ARRAY_PAIRS = {"arr_empty": "np_empty", "arr_touch": "np_touch",
               "arr_zeros_touch": "np_zeros_touch"}


#: What the ratio columns of a case's figures mean.
COLUMNS = {
    "ns": "median time of one statement over the rounds, in nanoseconds",
    "ns_iqr": "first and third quartiles of that time over the rounds",
    "x_empty": f"time / {EMPTY_CALL}'s (with-blocks: / {EMPTY_WITH}'s), median over the rounds",
    "x_object_pool": f"time / {OBJECT_POOL}'s, median over the rounds: how many times "
                     "faster ObjectPool is",
}


def group(key):
    """Which kind of case `key` is: "pair" (pool_ext's and the empty method
    call's acquire + release), "with" (with-blocks), "python" (Python's
    containers and pools written in Python) or "path" (scratch buffers)."""
    if key.startswith("path_"):
        return "path"
    if key in PYTHON_POOLS:
        return "python"
    return "with" if "with" in key else "pair"


def baselines(key):
    """{column: the key of the case this case's time is divided by}."""
    kind = group(key)
    if kind == "path":
        return {}
    out = {"x_empty": EMPTY_WITH if kind == "with" else EMPTY_CALL}
    if kind == "python":
        out["x_object_pool"] = OBJECT_POOL
    return out


def size_text(n):
    """4096 -> '4 KiB'."""
    for unit, s in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= s and n % s == 0:
            return f"{n // s} {unit}"
    return f"{n} B"
