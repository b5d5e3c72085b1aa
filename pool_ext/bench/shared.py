"""``pool-ext bench``'s SharedBufferPool rows (Linux, with numpy): a 64 MiB
float64 array handed to a worker process and back through a
multiprocessing Pipe, as an array of a SharedBufferPool (its block is sent,
no byte copied) or as a plain numpy array (pickled: a copy).

The worker is started once, before anything is timed; each round times a
batch of round trips of each kind, in turn.  benchmarks/shared_compare.py
measures more: multiprocessing.Queue, shared_memory used by hand, a
ProcessPoolExecutor.
"""
import multiprocessing
import time

from pool_ext.bench import cases as C
from pool_ext.bench.timing import quartiles

HANDOFF_BYTES = 64 << 20


def _round_trips(conn, a, k, first):
    """k round trips through conn: the worker sends first, the parent
    receives first; the array it ends with."""
    for _ in range(k):
        if first:
            conn.send(a)
            a = conn.recv()
        else:
            a = conn.recv()
            conn.send(a)
    return a


def _worker(conn, pool, n):
    import numpy as np
    arrays = {"shared": pool.empty((n,), np.float64), "plain": np.empty(n, np.float64)}
    arrays["shared"].fill(1.0)
    arrays["plain"].fill(2.0)
    conn.send("ready")
    while True:
        cmd = conn.recv()
        if cmd is None:
            break
        kind, k = cmd
        a = arrays[kind] = _round_trips(conn, arrays[kind], k, True)
        conn.send(float(a[0] + a[-1]))
        del a
    del arrays


def handoff(nbytes=HANDOFF_BYTES, rounds=3, seconds=0.1, progress=None):
    """{"nbytes", "shared" and "plain": {"ns", "ns_iqr"} per round trip,
    "ratio" (plain / shared, median of the per-round ratios) and
    "ratio_iqr", "trips"}; or {"skipped": why} where SharedBufferPool or
    numpy is missing, {"error": what} if the measurement failed."""
    why = C.shared_supported()
    if not why and C.numpy_or_none() is None:
        why = "numpy is not installed"
    if why:
        if progress:
            progress.step("SharedBufferPool: skipped")
        return {"skipped": why, "nbytes": nbytes}
    try:
        return _handoff(nbytes, rounds, seconds, progress)
    except Exception as e:     # a report, not a crash of the whole benchmark
        return {"error": f"{type(e).__name__}: {e}", "nbytes": nbytes}


def _handoff(nbytes, rounds, seconds, progress):
    from pool_ext import SharedBufferPool
    ctx = multiprocessing.get_context()
    n = nbytes // 8
    pool = SharedBufferPool(nbytes, 2)
    conn, child = ctx.Pipe()
    proc = ctx.Process(target=_worker, args=(child, pool, n), daemon=True)
    proc.start()
    expect = {"shared": 2.0, "plain": 4.0}

    def run(kind, k):
        t0 = time.perf_counter()
        conn.send((kind, k))
        a = _round_trips(conn, None, k, False)
        del a
        check = conn.recv()
        dt = time.perf_counter() - t0
        if check != expect[kind]:
            raise RuntimeError(f"the worker's {kind} array came back as {check}")
        return dt / k * 1e9

    try:
        if not conn.poll(60) or conn.recv() != "ready":
            raise RuntimeError("the worker process did not start")
        per = min(run("shared", 3), run("shared", 3))
        trips = {"shared": max(10, min(2000, int(seconds * 1e9 / per))), "plain": 1}
        run("plain", 1)
        times = {"shared": [], "plain": []}
        for r in range(rounds):
            for kind in (("shared", "plain") if r % 2 == 0 else ("plain", "shared")):
                times[kind].append(run(kind, trips[kind]))
        conn.send(None)
        proc.join(30)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
        conn.close()
        pool.close()
        if progress:
            progress.step("SharedBufferPool: a 64 MiB array to a process and back")
    out = {"nbytes": nbytes, "trips": trips, "start_method": ctx.get_start_method()}
    for kind, ts in times.items():
        q1, med, q3 = quartiles(ts)
        out[kind] = {"ns": med, "ns_iqr": [q1, q3]}
    r1, rmed, r3 = quartiles([p / s for p, s in zip(times["plain"], times["shared"])])
    out.update(ratio=rmed, ratio_iqr=[r1, r3])
    return out
