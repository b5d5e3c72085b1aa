"""SharedBufferPool (issue 21): numpy arrays handed between processes without
a copy, against pickling them (a copy) and against multiprocessing's
shared_memory used by hand.

    pip install ".[bench]"
    python benchmarks/shared_compare.py                 # the table, about 30 s
    python benchmarks/shared_compare.py --rounds 9 --json
    python benchmarks/shared_compare.py --start-method spawn

(a) Hand-off: a 64 MiB float64 array goes from a worker process to the
parent and back (one round trip), many times per round.  The worker is
started once, before anything is timed.  Contenders:

  pool_ext, Pipe        the array from SharedBufferPool.empty(), pickled
                        through a multiprocessing Pipe: its block is sent
                        (the receiver holds it), no byte of it is copied
  pool_ext, Queue       the same through a pair of multiprocessing.Queue
  shared_memory, Pipe   by hand: one multiprocessing.shared_memory block,
                        attached on both sides beforehand; each hop sends
                        (name, offset, shape) through the Pipe and the
                        receiver makes an ndarray over its attachment (no
                        ownership, no reclaim: what pool_ext adds)
  Pipe, pickled         a plain ndarray through the Pipe (a pickle: copies)
  Queue, pickled        a plain ndarray through multiprocessing.Queue

Each round times every contender once, in a rotating order (drift hits them
alike); the figure is the median over the rounds of the time per round trip,
and each ratio the median of the per-round ratios.  Issue 21's targets:
pool_ext at least 50x faster than the pickled Queue, and within 1.5x of
shared_memory by hand.

(b) A ProcessPoolExecutor with 4 workers: each task fills a 1 MiB float64
block (numpy fill) and returns it; the parent sums it.  pool_ext: the block
comes from SharedBufferPool.empty() in the worker (the pool passed through
the executor's initializer) and is sent back as a SharedArray; plain: the
task returns np.full(...) (pickled, copied).  At most `capacity` tasks are
outstanding (wait(FIRST_COMPLETED)), so every outstanding task can get a
block.  Figure: blocks per second, median over the rounds, and the ratio.
"""
import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from multiprocessing import shared_memory

import numpy as np

import pool_ext
from pool_ext import SharedBufferPool
from pool_ext.bench.timing import quartiles

MIB = 1 << 20
HANDOFF_BYTES = 64 * MIB
BLOCK_BYTES = 1 * MIB
WORKERS = 4

HANDOFF = [
    ("pool_pipe", "pool_ext, Pipe (the block is sent)"),
    ("pool_queue", "pool_ext, multiprocessing.Queue (the block is sent)"),
    ("shm_pipe", "shared_memory by hand, Pipe (name, offset)"),
    ("plain_pipe", "plain ndarray, Pipe (pickled: a copy)"),
    ("plain_queue", "plain ndarray, multiprocessing.Queue (pickled: a copy)"),
]
#: round trips per round of the slow (copying) contenders; the others are
#: calibrated to about --seconds per round
SLOW = {"plain_pipe", "plain_queue"}


# ---------------------------------------------------------------------------
# (a) the hand-off: one persistent worker, one loop per contender on each side
# ---------------------------------------------------------------------------

class Attachments:
    """shared_memory by hand: the receiver's attachments, by name (made
    once, as any hand-written code would)."""

    def __init__(self):
        self.shms = {}

    def view(self, desc):
        name, offset, n = desc
        shm = self.shms.get(name)
        if shm is None:
            shm = self.shms[name] = shared_memory.SharedMemory(name)
        return np.ndarray((n,), np.float64, buffer=shm.buf, offset=offset)

    def close(self):
        for shm in self.shms.values():
            shm.close()


def hops(method, k, pipe, q_send, q_recv, a, desc, attached, first):
    """k round trips of `method` from one side: the worker (first=True)
    sends first, the parent receives first.  Returns the array it ends with
    (the next round's, on the worker's side)."""
    if method in ("pool_pipe", "plain_pipe"):
        send, recv = pipe.send, pipe.recv
    elif method in ("pool_queue", "plain_queue"):
        send, recv = q_send.put, q_recv.get
    else:   # shm_pipe: only the descriptor travels
        for _ in range(k):
            if first:
                pipe.send(desc)
                a = attached.view(pipe.recv())
            else:
                a = attached.view(pipe.recv())
                pipe.send(desc)
        return a
    for _ in range(k):
        if first:
            send(a)
            a = recv()
        else:
            a = recv()
            send(a)
    return a


def handoff_worker(ctrl, pipe, q_to_parent, q_to_worker, pool, shm_name, n):
    """The worker of (a): fills its arrays once, then runs what `ctrl` says."""
    arrays = {"pool": pool.empty((n,), np.float64), "plain": np.empty(n, np.float64)}
    attached = Attachments()
    arrays["shm"] = attached.view((shm_name, 0, n))
    for i, a in enumerate(arrays.values()):
        a.fill(i + 1.0)
    desc = (shm_name, 0, n)
    ctrl.send("ready")
    while True:
        cmd = ctrl.recv()
        if cmd is None:
            break
        method, k = cmd
        kind = method.split("_")[0]
        a = hops(method, k, pipe, q_to_parent, q_to_worker, arrays[kind], desc, attached, True)
        arrays[kind] = a
        ctrl.send(float(a[0]) + float(a[-1]))   # the data arrived, and is the data sent
    del arrays, a
    attached.close()


class Handoff:
    """The parent's side of (a): the worker, its channels and the segments."""

    def __init__(self, ctx, nbytes=HANDOFF_BYTES):
        self.n = nbytes // 8
        self.pool = SharedBufferPool(nbytes, 2)
        self.shm = shared_memory.SharedMemory(create=True, size=nbytes)
        self.attached = Attachments()
        self.ctrl, ctrl_child = ctx.Pipe()
        self.pipe, pipe_child = ctx.Pipe()
        self.q_to_parent, self.q_to_worker = ctx.Queue(), ctx.Queue()
        self.proc = ctx.Process(target=handoff_worker, daemon=True,
                                args=(ctrl_child, pipe_child, self.q_to_parent,
                                      self.q_to_worker, self.pool, self.shm.name, self.n))
        self.proc.start()
        if not self.ctrl.poll(60) or self.ctrl.recv() != "ready":
            raise RuntimeError("the hand-off worker did not start")
        self.expect = {"pool": 2.0, "plain": 4.0, "shm": 6.0}

    def run(self, method, k):
        """Seconds per round trip over k round trips."""
        t0 = time.perf_counter()
        self.ctrl.send((method, k))
        a = hops(method, k, self.pipe, self.q_to_worker, self.q_to_parent, None,
                 (self.shm.name, 0, self.n), self.attached, False)
        check = self.ctrl.recv()
        dt = time.perf_counter() - t0
        del a
        if check != self.expect[method.split("_")[0]]:
            raise AssertionError(f"{method}: the worker ended with {check}")
        return dt / k

    def close(self):
        self.ctrl.send(None)
        self.proc.join(30)
        self.attached.close()
        self.shm.close()
        self.shm.unlink()
        for q in (self.q_to_parent, self.q_to_worker):
            q.close()
            q.join_thread()
        left = self.pool.stats()
        self.pool.close()
        return left


def measure_handoff(ctx, rounds, seconds, slow_trips):
    h = Handoff(ctx)
    try:
        trips = {}
        for method, _ in HANDOFF:       # warm-up, and the calibration
            per = min(h.run(method, 2), h.run(method, 2))
            trips[method] = slow_trips if method in SLOW else \
                max(10, min(5000, int(seconds / per)))
        samples = {m: [] for m, _ in HANDOFF}
        for r in range(rounds):
            order = HANDOFF[r % len(HANDOFF):] + HANDOFF[:r % len(HANDOFF)]
            for method, _ in order:
                samples[method].append(h.run(method, trips[method]))
    finally:
        left = h.close()
    return {"samples": samples, "trips": trips, "pool_stats_after": left}


# ---------------------------------------------------------------------------
# (b) ProcessPoolExecutor: workers fill 1 MiB blocks, the parent sums them
# ---------------------------------------------------------------------------

_POOL = None
_ITEMS = BLOCK_BYTES // 8


def init_worker(pool):
    global _POOL
    _POOL = pool


def fill_shared(i):
    a = _POOL.empty((_ITEMS,), np.float64, timeout=60)
    a.fill(i)
    return a


def fill_plain(i):
    return np.full(_ITEMS, i, np.float64)


def run_blocks(ex, task, nblocks, window):
    """Blocks per second: nblocks tasks, at most `window` outstanding; the
    parent sums each result as it comes (and checks the total)."""
    total = 0.0
    pending = set()
    t0 = time.perf_counter()
    i = 0
    while i < nblocks or pending:
        while i < nblocks and len(pending) < window:
            pending.add(ex.submit(task, i % 1000))
            i += 1
        done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        for f in done:
            total += float(f.result().sum())
        del done, f
    dt = time.perf_counter() - t0
    want = sum(j % 1000 for j in range(nblocks)) * float(_ITEMS)
    if total != want:
        raise AssertionError(f"{task.__name__}: sum {total}, expected {want}")
    return nblocks / dt


def measure_executor(ctx, rounds, nblocks, capacity=16):
    pool = SharedBufferPool(BLOCK_BYTES, capacity)
    contenders = [("pool", fill_shared), ("plain", fill_plain)]
    samples = {k: [] for k, _ in contenders}
    with cf.ProcessPoolExecutor(WORKERS, mp_context=ctx, initializer=init_worker,
                                initargs=(pool,)) as ex:
        for _, task in contenders:      # start the workers, warm up
            run_blocks(ex, task, 4 * WORKERS * 4, capacity)
        for r in range(rounds):
            for key, task in (contenders if r % 2 == 0 else contenders[::-1]):
                samples[key].append(run_blocks(ex, task, nblocks, capacity))
    left = pool.stats()
    pool.close()
    return {"samples": samples, "blocks_per_round": nblocks, "capacity": capacity,
            "workers": WORKERS, "pool_stats_after": left}


# ---------------------------------------------------------------------------
# the figures, the table
# ---------------------------------------------------------------------------



def summary(values):
    q1, med, q3 = quartiles(values)
    return {"median": med, "q1": q1, "q3": q3, "min": min(values), "max": max(values)}


def ratios(a, b):
    """Per-round a / b: the median and its spread."""
    return summary([x / y for x, y in zip(a, b)])


def machine():
    return {"pool_ext": pool_ext.__version__, "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "platform": platform.platform(), "cpus": os.cpu_count(),
            "numpy": np.__version__,
            "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def run(rounds=7, seconds=0.3, slow_trips=3, blocks=2000, start_method=None,
        handoff=True, executor=True):
    ctx = mp.get_context(start_method)
    result = {"machine": machine(), "settings": {
        "rounds": rounds, "seconds": seconds, "slow_trips": slow_trips, "blocks": blocks,
        "start_method": ctx.get_start_method(), "handoff_bytes": HANDOFF_BYTES,
        "block_bytes": BLOCK_BYTES}}
    t0 = time.perf_counter()
    if handoff:
        h = measure_handoff(ctx, rounds, seconds, slow_trips)
        s = h["samples"]
        h["us_per_round_trip"] = {m: summary([x * 1e6 for x in v]) for m, v in s.items()}
        h["ratios"] = {
            "queue_pickled_over_pool_pipe": ratios(s["plain_queue"], s["pool_pipe"]),
            "queue_pickled_over_pool_queue": ratios(s["plain_queue"], s["pool_queue"]),
            "pipe_pickled_over_pool_pipe": ratios(s["plain_pipe"], s["pool_pipe"]),
            "pool_pipe_over_shm_pipe": ratios(s["pool_pipe"], s["shm_pipe"]),
        }
        result["handoff"] = h
    if executor:
        e = measure_executor(ctx, rounds, blocks)
        s = e["samples"]
        e["blocks_per_s"] = {k: summary(v) for k, v in s.items()}
        e["ratio_pool_over_plain"] = ratios(s["pool"], s["plain"])
        result["executor"] = e
    result["seconds"] = time.perf_counter() - t0
    result["machine"]["loadavg_end"] = machine()["loadavg"]
    return result


def _pm(s, fmt):
    return f"{format(s['median'], fmt)} ({format(s['q1'], fmt)}-{format(s['q3'], fmt)})"


def _verdict(value, op, bound):
    ok = value >= bound if op == ">=" else value <= bound
    return f"target {op} {bound:g}: {'PASS' if ok else 'MISS'}"


def format_table(result):
    m, st = result["machine"], result["settings"]
    la, end = m["loadavg"], m["loadavg_end"]
    lines = [f"pool_ext {m['pool_ext']}, {m['implementation']} {m['python']}, numpy "
             f"{m['numpy']}, {m['cpus']} CPUs, load average "
             f"{la[0]:.2f} at the start, {end[0]:.2f} at the end; start method "
             f"{st['start_method']}",
             f"Medians of {st['rounds']} interleaved rounds (in brackets: the first and "
             "third quartiles over the rounds)."]
    h = result.get("handoff")
    if h:
        mib = st["handoff_bytes"] // MIB
        lines += ["", f"(a) A {mib} MiB float64 array, worker -> parent -> worker: time per "
                      "round trip (round trips per round)."]
        for method, label in HANDOFF:
            lines.append(f"{_pm(h['us_per_round_trip'][method], ',.0f'):>30s} us "
                         f"({h['trips'][method]:>4d})  {label}")
        r = h["ratios"]
        q, qq = r["queue_pickled_over_pool_pipe"], r["queue_pickled_over_pool_queue"]
        p, s = r["pipe_pickled_over_pool_pipe"], r["pool_pipe_over_shm_pipe"]
        lines += [
            f"{_pm(q, ',.0f'):>30s} x    pickled Queue / pool_ext Pipe   "
            f"{_verdict(q['median'], '>=', 50)}",
            f"{_pm(qq, ',.0f'):>30s} x    pickled Queue / pool_ext Queue  "
            f"{_verdict(qq['median'], '>=', 50)}",
            f"{_pm(p, ',.0f'):>30s} x    pickled Pipe / pool_ext Pipe",
            f"{_pm(s, '.2f'):>30s} x    pool_ext Pipe / shared_memory by hand   "
            f"{_verdict(s['median'], '<=', 1.5)}"]
    e = result.get("executor")
    if e:
        lines += ["", f"(b) ProcessPoolExecutor, {e['workers']} workers: each task fills "
                      f"a {st['block_bytes'] // MIB} MiB float64 block, the parent sums "
                      f"it; {e['blocks_per_round']:,d} blocks per round, at most "
                      f"{e['capacity']} outstanding."]
        bp = e["blocks_per_s"]
        lines += [f"{_pm(bp['pool'], ',.0f'):>30s} /s  pool_ext: SharedBufferPool.empty() "
                  "in the worker, sent back as a SharedArray",
                  f"{_pm(bp['plain'], ',.0f'):>30s} /s  plain: np.full() returned "
                  "(pickled: a copy)",
                  f"{_pm(e['ratio_pool_over_plain'], '.2f'):>30s} x   pool_ext / plain"]
    left = [f"{part}: {r['pool_stats_after']}" for part, r in
            (("(a)", result.get("handoff")), ("(b)", result.get("executor")))
            if r and r["pool_stats_after"]["free"] != r["pool_stats_after"]["capacity"]]
    if left:
        lines += ["", "WARNING: blocks still held or in transit after the run:", *left]
    lines.append(f"\nTook {result['seconds']:.1f} s.")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    p.add_argument("--seconds", type=float, default=0.3,
                   help="(a): about this long per round of each fast contender (default 0.3)")
    p.add_argument("--slow-trips", type=int, default=3,
                   help="(a): round trips per round of the pickling contenders (default 3)")
    p.add_argument("--blocks", type=int, default=2000,
                   help="(b): blocks per round of each contender (default 2000)")
    p.add_argument("--start-method", choices=mp.get_all_start_methods(),
                   help="multiprocessing's start method (default: the platform's)")
    p.add_argument("--only", choices=("handoff", "executor"), help="run one part only")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = p.parse_args(argv)
    if not sys.platform.startswith("linux"):
        p.error("SharedBufferPool is Linux only")
    result = run(rounds=args.rounds, seconds=args.seconds, slow_trips=args.slow_trips,
                 blocks=args.blocks, start_method=args.start_method,
                 handoff=args.only in (None, "handoff"),
                 executor=args.only in (None, "executor"))
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
