"""pool_ext._bench: the benchmark behind ``python -m pool_ext bench``.

Pure Python, no dependency (numpy is used when installed, matplotlib only for
``--plot``).  benchmarks/ (the pytest-benchmark suite) and
benchmarks/callgrind.py import the peers and the cases from here, so every
number is measured on the same code.

Method.  Each case is one statement timed by ``timeit`` (its loop adds no
call of its own), calibrated so one batch lasts ``batch`` seconds.  All cases
are timed once per round, round after round, so a noisy moment hits every
case alike; a case's time is the median over rounds, and its ratio to the
floor is the median of the per-round ratios.  The spread is reported as the
interquartile range over rounds, relative to the median.
"""
import gc
import json
import os
import platform
import queue
import statistics
import sys
import threading
import time
import timeit

from pool_ext import ATOMICS, BufferPool, ObjectPool, __version__
from pool_ext._floor import Floor



def _numpy():
    """numpy, or None: optional, and imported only when a case needs it (its
    BLAS threads would otherwise add noise to the instruction counts)."""
    try:
        import numpy
    except ImportError:  # pragma: no cover
        return None
    return numpy


# ---------------------------------------------------------------------------
# The pools people write by hand (the peers)
# ---------------------------------------------------------------------------

class Connection:
    """The seed article's Connection, minus its print() calls."""

    def __init__(self, id):
        self.id = id
        self.is_in_use = False

    def open(self):
        self.is_in_use = True

    def close(self):
        self.is_in_use = False


class SeedPool:
    """The seed article's ConnectionPool: a linear scan over is_in_use flags
    (its logic copied; the prints removed so they are not what we time)."""

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

    # the common names, for the threaded workload
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
    return _QueuePool(queue.LifoQueue(), factory, capacity)


def simple_queue_pool(factory, capacity):
    return _QueuePool(queue.SimpleQueue(), factory, capacity)


# ---------------------------------------------------------------------------
# Cases: (key, label, statement, namespace)
# ---------------------------------------------------------------------------

WITH = "with {0} as o:\n    pass"
PAIR = "{0}.release({0}.acquire())"

#: the ratio targets of issue 4: case key -> (floor key, target ratio)
TARGETS = {
    "obj_pair": ("floor_pair", 1.10),
    "obj_with": ("floor_with", 1.15),
    "buf_pair": ("floor_pair", 1.50),
}
#: speed-up targets: peer key -> at least this many times slower than obj_pair
SPEEDUP_TARGETS = {"lifoqueue": 20.0, "locklist": 5.0, "simplequeue": 1.0}


def core_cases(capacity=64, buffer_size=1 << 20):
    f = Floor()
    pool = ObjectPool(object, capacity, prefill=capacity)
    bufs = BufferPool(buffer_size, capacity)
    lst = [object() for _ in range(capacity)]
    ns = dict(f=f, pool=pool, bufs=bufs, lst=lst,
              sq=simple_queue_pool(object, capacity),
              ll=LockListPool(object, capacity),
              lq=lifo_queue_pool(object, capacity))
    for n in (64, 1024):
        sp = SeedPool(n)
        for c in sp.connections[: n // 2]:   # half held, at the front
            c.is_in_use = True
        ns[f"seed{n}"] = sp
    return [
        ("floor_pair", "floor: empty f.release(f.acquire())", PAIR.format("f"), ns),
        ("floor_pair_fastcall", "floor, FASTCALL|KEYWORDS methods",
         "f.release_fastcall(f.acquire_fastcall())", ns),
        ("floor_with", "floor: empty with f.lease() as o", WITH.format("f.lease()"), ns),
        ("floor_with_self", "floor: empty with f as o", WITH.format("f"), ns),
        ("obj_pair", "ObjectPool pool.release(pool.acquire())", PAIR.format("pool"), ns),
        ("obj_try_pair", "ObjectPool pool.release(pool.try_acquire())",
         "pool.release(pool.try_acquire())", ns),
        ("obj_with", "ObjectPool with pool.lease() as o", WITH.format("pool.lease()"), ns),
        ("buf_pair", "BufferPool bufs.acquire().release()", "bufs.acquire().release()", ns),
        ("buf_with", "BufferPool with bufs.acquire() as b", WITH.format("bufs.acquire()"), ns),
        ("list", "list: lst.append(lst.pop())", "lst.append(lst.pop())", ns),
        ("simplequeue", "queue.SimpleQueue pool", PAIR.format("sq"), ns),
        ("locklist", "threading.Lock + list pool", PAIR.format("ll"), ns),
        ("lifoqueue", "queue.LifoQueue pool", PAIR.format("lq"), ns),
        ("seed64", "seed linear scan, 64 slots (32 held)",
         "seed64.release_connection(seed64.get_connection())", ns),
        ("seed1024", "seed linear scan, 1024 slots (512 held)",
         "seed1024.release_connection(seed1024.get_connection())", ns),
    ]


def path_cases(buffer_size=1 << 20, capacity=8):
    """The path users run: acquire, view the memory, release."""
    np = _numpy()
    bufs = BufferPool(buffer_size, capacity)
    ba = bytearray(buffer_size)
    ns = dict(bufs=bufs, ba=ba, size=buffer_size, np=np, memoryview=memoryview,
              bytearray=bytearray)
    cases = [
        ("path_mv", f"BufferPool acquire + memoryview + release ({_size(buffer_size)})",
         "b = bufs.acquire(); memoryview(b).release(); b.release()", ns),
        ("path_mv_reuse", "reused bytearray: memoryview(ba).release()",
         "memoryview(ba).release()", ns),
        ("path_bytearray", f"bytearray({_size(buffer_size)}) + memoryview",
         "memoryview(bytearray(size)).release()", ns),
    ]
    if np is not None:
        ns["u8"] = np.uint8
        cases += [
            ("path_np", f"BufferPool acquire + np.frombuffer + release ({_size(buffer_size)})",
             "b = bufs.acquire(); a = np.frombuffer(b, u8); del a; b.release()", ns),
            ("path_np_empty", f"np.empty({_size(buffer_size)})", "np.empty(size, u8)", ns),
            ("path_np_zeros", f"np.zeros({_size(buffer_size)})", "np.zeros(size, u8)", ns),
            # the same, writing one byte per 4 KiB page: fresh memory pays a
            # page fault per page (and large np.empty is a fresh mmap)
            ("path_np_touch", "BufferPool + np.frombuffer + write each page",
             "b = bufs.acquire(); a = np.frombuffer(b, u8); a[::4096] = 1; del a; "
             "b.release()", ns),
            ("path_np_empty_touch", f"np.empty({_size(buffer_size)}) + write each page",
             "a = np.empty(size, u8); a[::4096] = 1", ns),
        ]
    return cases


def _size(n):
    for unit, s in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= s and n % s == 0:
            return f"{n // s} {unit}"
    return f"{n} B"


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

class Progress:
    """A dependency-free progress bar on stderr."""

    def __init__(self, total, enabled=True, width=30, stream=None):
        self.total = max(total, 1)
        self.done = 0
        self.width = width
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = -1

    def step(self, label="", n=1):
        self.done = min(self.done + n, self.total)
        if not self.enabled:
            return
        frac = self.done / self.total
        pct = int(frac * 100)
        if not self.tty and pct // 10 == self._last // 10 and self.done < self.total:
            return   # a log, not a terminal: one line per 10%
        self._last = pct
        bar = "#" * int(frac * self.width)
        line = f"[{bar:<{self.width}}] {pct:3d}% {label[:40]:<40}"
        if self.tty:
            self.stream.write("\r" + line)
        else:
            self.stream.write(line.rstrip() + "\n")
        self.stream.flush()

    def close(self):
        if self.enabled and self.tty:
            self.stream.write("\r" + " " * (self.width + 48) + "\r")
            self.stream.flush()


def _calibrate(timer, batch):
    n = 1
    while True:
        t = timer.timeit(n)
        if t >= batch / 5 or n >= 1 << 24:
            return max(1, int(n * batch / max(t, 1e-9)))
        n *= 4 if t < batch / 50 else 2


def measure(cases, rounds=7, batch=0.02, progress=None):
    """Times every case once per round, interleaved.

    Returns {key: [seconds per statement, one per round]}.
    """
    timers = []
    for key, _label, stmt, ns in cases:
        t = timeit.Timer(stmt, globals=ns)
        timers.append((key, t, _calibrate(t, batch)))
        if progress:
            progress.step(f"calibrating {key}")
    samples = {key: [] for key, _, _ in timers}
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            # rotate the order so no case always follows the same neighbour
            k = r % len(timers)
            for key, t, n in timers[k:] + timers[:k]:
                samples[key].append(t.timeit(n) / n)
                if progress:
                    progress.step(f"round {r + 1}/{rounds} {key}")
    finally:
        if gc_was:
            gc.enable()
    return samples


def summarize(samples, floor_key="floor_pair"):
    """Median ns, relative spread (IQR / median) and median ratio to floors."""
    out = {}
    for key, s in samples.items():
        med = statistics.median(s)
        q = statistics.quantiles(s, n=4, method="inclusive") if len(s) >= 2 else [med] * 3
        out[key] = {"ns": med * 1e9, "min_ns": min(s) * 1e9,
                    "spread": (q[2] - q[0]) / med if med else 0.0}
    for key, s in samples.items():
        for fk in {floor_key, TARGETS.get(key, (floor_key,))[0]}:
            if fk in samples:
                ratios = [a / b for a, b in zip(s, samples[fk])]
                out[key][f"ratio_{fk}"] = statistics.median(ratios)
    return out


# ---------------------------------------------------------------------------
# O(1) vs O(n): cost per pair against capacity and occupancy
# ---------------------------------------------------------------------------

def scaling(capacities, fractions=(0.0, 0.5, 0.99), seed_max=1_000_000, batch=0.01,
            rounds=3, progress=None):
    """ns per acquire/release pair; returns {"pool_ext": {f: [(cap, ns)]}, "seed": ...}."""
    res = {"pool_ext": {f: [] for f in fractions}, "seed": {f: [] for f in fractions}}
    for cap in capacities:
        pool = ObjectPool(object, cap, prefill=cap)
        held = []
        for f in fractions:
            k = min(int(cap * f), cap - 1)
            while len(held) < k:
                held.append(pool.acquire())
            res["pool_ext"][f].append((cap, _best(PAIR.format("pool"), {"pool": pool},
                                                  batch, rounds)))
            if progress:
                progress.step(f"O(1) pool_ext cap={cap} held={f:.0%}")
        for o in held:
            pool.release(o)
        del pool, held
        if cap <= seed_max:
            sp = SeedPool(cap)
            for f in fractions:
                k = min(int(cap * f), cap - 1)
                for c in sp.connections[:k]:
                    c.is_in_use = True
                res["seed"][f].append((cap, _best(
                    "sp.release_connection(sp.get_connection())", {"sp": sp}, batch, rounds)))
                if progress:
                    progress.step(f"O(n) seed cap={cap} held={f:.0%}")
            del sp
        elif progress:
            progress.step("", len(fractions))
    return res


def _best(stmt, ns, batch, rounds):
    t = timeit.Timer(stmt, globals=ns)
    n = _calibrate(t, batch)
    return statistics.median(t.timeit(n) / n for _ in range(rounds)) * 1e9


def size_curve(sizes, batch=0.01, rounds=3, progress=None):
    """ns for the user's whole path, against buffer size: pooled vs fresh."""
    res = {}
    for size in sizes:
        for key, _label, stmt, ns in path_cases(size, capacity=4):
            if key == "path_mv_reuse":
                continue
            res.setdefault(key, []).append((size, _best(stmt, ns, batch, rounds)))
        if progress:
            progress.step(f"size {_size(size)}")
    return res


# ---------------------------------------------------------------------------
# Memory per slot and threads
# ---------------------------------------------------------------------------

def _rss():
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):  # not Linux
        return None


def memory_per_slot(capacity=1_000_000):
    """Bytes per slot, excluding the pooled objects/buffers.

    ObjectPool: its objects are made before the measurement, then the pool is
    built, filled and cycled (every slot held once, so every C array page is
    touched); the RSS delta (all memory) and tracemalloc delta (the Python
    heap: the slot list) are divided by capacity.  Nominal: the C arrays
    (next[] 4 B + state 8 B + address map 16 B x next_pow2(2 x capacity))
    plus the list's 8 B pointer.
    """
    import tracemalloc
    objs = [object() for _ in range(capacity)]
    it = iter(objs)
    held = [None] * capacity    # made first: not part of the measurement
    gc.collect()
    tracemalloc.start()
    r0, t0 = _rss(), tracemalloc.get_traced_memory()[0]
    pool = ObjectPool(it.__next__, capacity, prefill=capacity)
    for k in range(capacity):
        held[k] = pool.acquire()
    for o in held:
        pool.release(o)
    r1, t1 = _rss(), tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    size = 4
    while size < 2 * capacity:
        size <<= 1
    nominal = 4 + 8 + 16 * size / capacity + 8
    out = {"capacity": capacity,
           "object_pool": {"nominal": nominal,
                           "rss": None if r0 is None else (r1 - r0) / capacity,
                           "tracemalloc": (t1 - t0) / capacity}}
    del pool, held
    gc.collect()
    # BufferPool: the arena is calloc'ed and never written here, so its pages
    # are not resident; holding every slot touches every state word.  No
    # tracemalloc (its own bookkeeping per handle would show in RSS): the
    # handles' list is made first and their size, sys.getsizeof each, is
    # subtracted.
    held = [None] * capacity
    r0 = _rss()
    bp = BufferPool(64, capacity)
    for k in range(capacity):
        held[k] = bp.acquire()
    r1 = _rss()
    handle = sys.getsizeof(held[0])
    for b in held:
        b.release()
    out["buffer_pool"] = {"nominal": 4 + 8 + (bp.stride - bp.buffer_size),
                          "stride": bp.stride, "buffer_size": bp.buffer_size,
                          "rss": None if r0 is None else (r1 - r0) / capacity - handle}
    return out


def memory_in_subprocess(capacity=1_000_000):
    """memory_per_slot() in a fresh interpreter: in this one, memory freed by
    the earlier cases is reused without growing RSS, which hides the pools'."""
    import subprocess
    code = ("import json, sys; from pool_ext._bench import memory_per_slot; "
            f"json.dump(memory_per_slot({capacity}), sys.stdout)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"capacity": capacity, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout)


def threads(n=200_000, progress=None):
    """Total pairs/s with 2 threads (n/2 pairs each) vs 1 thread (n pairs)."""
    makers = {
        "pool_ext ObjectPool": lambda: ObjectPool(object, 8, prefill=8),
        "threading.Lock + list": lambda: LockListPool(object, 8),
        "queue.SimpleQueue": lambda: simple_queue_pool(object, 8),
        "queue.LifoQueue": lambda: lifo_queue_pool(object, 8),
    }
    res = {}
    for name, make in makers.items():
        per = n if "Lifo" not in name else n // 10
        out = {}
        for nthreads in (1, 2):
            pool = make()
            acquire, release = pool.acquire, pool.release
            start = threading.Barrier(nthreads + 1)

            def work(k):
                start.wait()
                for _ in range(k):
                    release(acquire())

            ts = [threading.Thread(target=work, args=(per // nthreads,))
                  for _ in range(nthreads)]
            for t in ts:
                t.start()
            t0 = time.perf_counter()
            start.wait()
            for t in ts:
                t.join()
            out[nthreads] = per / (time.perf_counter() - t0)
        res[name] = {"1 thread": out[1], "2 threads": out[2], "ratio": out[2] / out[1]}
        if progress:
            progress.step(f"threads {name}")
    return res


# ---------------------------------------------------------------------------
# python -m pool_ext bench
# ---------------------------------------------------------------------------

def machine():
    np = _numpy()
    return {
        "pool_ext": __version__, "atomics": ATOMICS,
        "python": sys.version.split()[0], "implementation": platform.python_implementation(),
        "platform": platform.platform(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "numpy": None if np is None else np.__version__,
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def run(rounds=15, batch=0.02, capacities=None, sizes=None, with_threads=True,
        with_memory=True, progress=True):
    if capacities is None:
        capacities = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000]
    if sizes is None:
        sizes = [1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24]
    core, paths = core_cases(), path_cases()
    ncases = len(core) + len(paths)
    total = (ncases * (rounds + 1) + 2 * 3 * len(capacities) + len(sizes)
             + (4 if with_threads else 0) + (1 if with_memory else 0))
    bar = Progress(total, enabled=progress)
    t0 = time.perf_counter()
    result = {"machine": machine()}
    samples = measure(core + paths, rounds=rounds, batch=batch, progress=bar)
    result["cases"] = summarize(samples)
    result["labels"] = {k: label for k, label, _, _ in core + paths}
    result["scaling"] = {who: {str(f): pts for f, pts in curves.items()}
                         for who, curves in scaling(capacities, progress=bar).items()}
    result["sizes"] = size_curve(sizes, progress=bar)
    if with_threads:
        result["threads"] = threads(progress=bar)
    if with_memory:
        result["memory"] = memory_in_subprocess()
        bar.step("memory")
    bar.close()
    result["seconds"] = time.perf_counter() - t0
    result["machine"]["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return result


def format_table(result):
    c = result["cases"]
    lab = result["labels"]
    m = result["machine"]
    lines = [f"pool_ext {m['pool_ext']} ({m['atomics']}), Python {m['python']}, "
             f"{m['cpus']} CPUs, load {_load(m)}; medians of the rounds, "
             f"spread = interquartile range / median;",
             "speed-up = that pool's time / pool.release(pool.acquire())'s", ""]
    hdr = f"{'operation':54s} {'ns':>8s} {'spread':>7s} {'x floor':>8s} {'speed-up':>9s}"
    lines += [hdr, "-" * len(hdr)]
    obj = c["obj_pair"]["ns"]
    for key, v in c.items():
        if key.startswith("path_"):
            continue
        fk = TARGETS.get(key, ("floor_with",) if "with" in key else ("floor_pair",))[0]
        ratio = v.get(f"ratio_{fk}", v["ns"] / c[fk]["ns"])
        faster = ""
        if key in ("list", "simplequeue", "locklist", "lifoqueue", "seed64", "seed1024"):
            faster = f"{v['ns'] / obj:.1f}x"
        tgt = ""
        if key in TARGETS:
            tgt = "  target <= %.2fx: %s" % (TARGETS[key][1],
                                             "met" if ratio <= TARGETS[key][1] else "MISSED")
        elif key in SPEEDUP_TARGETS:
            want = SPEEDUP_TARGETS[key]
            tgt = "  target >= %sx: %s" % (want, "met" if v["ns"] / obj >= want
                                           else "MISSED") if want > 1 else \
                "  target faster: %s" % ("met" if v["ns"] > obj else "MISSED")
        lines.append(f"{lab[key]:54s} {v['ns']:8.1f} {v['spread']:6.0%} "
                     f"{ratio:7.2f}x {faster:>9s}{tgt}")
    lines += ["", "the path users run (1 MiB buffer):"]
    for key, v in c.items():
        if key.startswith("path_"):
            lines.append(f"  {lab[key]:52s} {v['ns']:8.1f} ns {v['spread']:6.0%}")
    if result.get("scaling"):
        sc = result["scaling"]
        lines += ["", "ns per pair against capacity (held fraction of slots):"]
        caps = [cap for cap, _ in next(iter(sc["pool_ext"].values()))]
        lines.append(f"  {'':22s}" + "".join(f"{cap:>10,d}" for cap in caps))
        for who in ("pool_ext", "seed"):
            for f, pts in sc[who].items():
                d = dict(pts)
                lines.append(f"  {who + ' ' + format(float(f), '.0%') + ' held':22s}"
                             + "".join(f"{d[cap]:10.0f}" if cap in d else f"{'-':>10s}"
                                       for cap in caps))
    if result.get("sizes"):
        lines += ["", "ns for the whole path against buffer size (pooled vs fresh):"]
        sizes = [s for s, _ in next(iter(result["sizes"].values()))]
        lines.append(f"  {'':30s}" + "".join(f"{_size(s):>10s}" for s in sizes))
        for key, pts in result["sizes"].items():
            lines.append(f"  {key:30s}" + "".join(f"{ns:10.0f}" for _, ns in pts))
    if result.get("threads"):
        lines += ["", "threads (GIL build: one runs at a time), pairs per second:"]
        for name, v in result["threads"].items():
            lines.append(f"  {name:24s} 1 thread {v['1 thread'] / 1e6:6.2f} M/s   "
                         f"2 threads {v['2 threads'] / 1e6:6.2f} M/s   ({v['ratio']:.2f}x)")
    if result.get("memory") and "error" not in result["memory"]:
        mo = result["memory"]
        op, bp = mo["object_pool"], mo["buffer_pool"]
        lines += ["", f"memory per slot (capacity {mo['capacity']:,d}, pooled objects excluded):",
                  f"  ObjectPool  nominal {op['nominal']:.0f} B, measured RSS "
                  f"{_fmt(op['rss'])} B, Python heap {op['tracemalloc']:.1f} B",
                  f"  BufferPool  nominal {bp['nominal']:.0f} B (stride {bp['stride']} for "
                  f"{bp['buffer_size']} B buffers), measured RSS {_fmt(bp['rss'])} B"]
    lines.append(f"\n({result['seconds']:.1f} s)")
    return "\n".join(lines)


def _fmt(x):
    return "n/a" if x is None else f"{x:.1f}"


def _load(m):
    la = m.get("loadavg")
    return "n/a" if la is None else f"{la[0]:.2f}"


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.8))
    styles = {"0.0": "-", "0.5": "--", "0.99": ":"}
    for who, color in (("pool_ext", "tab:blue"), ("seed", "tab:red")):
        for f, pts in result["scaling"][who].items():
            if pts:
                xs, ys = zip(*pts)
                a1.plot(xs, ys, styles.get(f, "-"), color=color, marker="o", ms=3,
                        label=f"{'pool_ext ObjectPool' if who == 'pool_ext' else 'seed linear scan'}"
                              f", {float(f):.0%} held")
    floor = result["cases"]["floor_pair"]["ns"]
    a1.axhline(floor, color="gray", lw=0.8, label=f"floor (empty pair) {floor:.0f} ns")
    a1.set(xscale="log", yscale="log", xlabel="capacity (slots)",
           ylabel="ns per acquire + release", title="O(1) vs O(n): cost against pool size")
    a1.legend(fontsize=7)
    names = {"path_mv": "BufferPool + memoryview", "path_bytearray": "bytearray + memoryview",
             "path_np": "BufferPool + np.frombuffer", "path_np_empty": "np.empty",
             "path_np_zeros": "np.zeros",
             "path_np_touch": "BufferPool + np.frombuffer + write each page",
             "path_np_empty_touch": "np.empty + write each page"}
    colors = {"path_mv": "tab:blue", "path_np": "tab:green", "path_np_touch": "tab:green",
              "path_bytearray": "tab:orange", "path_np_empty": "tab:red",
              "path_np_empty_touch": "tab:red", "path_np_zeros": "tab:purple"}
    for key, pts in result["sizes"].items():
        xs, ys = zip(*pts)
        a2.plot(xs, ys, "--" if key.endswith("_touch") else "-", marker="o", ms=3,
                color=colors.get(key), label=names.get(key, key))
    a2.set(xscale="log", yscale="log", xlabel="buffer size (bytes)",
           ylabel="ns per get + use + give back", title="scratch memory: pooled vs fresh")
    a2.legend(fontsize=7)
    m = result["machine"]
    fig.suptitle(f"pool_ext {m['pool_ext']}, Python {m['python']}, {m['cpus']} CPUs "
                 f"({m['atomics']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(args):
    if args.quick:
        result = run(rounds=3, batch=0.005, capacities=[1, 100, 10_000, 1_000_000],
                     sizes=[1 << 12, 1 << 20, 1 << 24], with_threads=False,
                     with_memory=False, progress=not args.no_progress)
    else:
        result = run(rounds=args.rounds, batch=args.batch, progress=not args.no_progress)
    if args.json:
        json.dump(result, sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        print(format_table(result))
    if args.plot:
        plot(result, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0
