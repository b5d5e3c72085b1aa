"""How ``pool-ext bench`` times things.

Each case is one statement timed by ``timeit`` (its loop adds no call of its
own), calibrated so that one batch lasts ``batch`` seconds.  All the cases
are timed once per round, round after round, so a noisy moment hits every
case alike.  A case's time is the median over the rounds, its ratio to a
reference is the median of the per-round ratios, and the spread of each is
the interquartile range over the rounds (the middle half of them).

Every function takes an optional ``progress`` object, told ``step(text, n)``
as the work advances.
"""
import gc
import statistics
import threading
import time
import timeit

from pool_ext import ObjectPool
from pool_ext.bench import cases as C


def quartiles(values):
    """(first quartile, median, third quartile) of the values."""
    med = statistics.median(values)
    if len(values) < 2:
        return med, med, med
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, med, q3


def _calibrate(timer, batch):
    n = 1
    while True:
        t = timer.timeit(n)
        if t >= batch / 5 or n >= 1 << 24:
            return max(1, int(n * batch / max(t, 1e-9)))
        n *= 4 if t < batch / 50 else 2


def _step(progress, text, n=1):
    if progress:
        progress.step(text, n)


def measure(cases, rounds=7, batch=0.02, progress=None):
    """Times every case once per round, interleaved.

    Returns {key: [seconds per statement, one per round]}.
    """
    timers = []
    for key, label, stmt, ns in cases:
        t = timeit.Timer(stmt, globals=ns)
        timers.append((key, label, t, _calibrate(t, batch)))
        _step(progress, f"calibrating: {label}")
    samples = {key: [] for key, _, _, _ in timers}
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            # rotate the order so no case always follows the same neighbour
            k = r % len(timers)
            for key, label, t, n in timers[k:] + timers[:k]:
                samples[key].append(t.timeit(n) / n)
                _step(progress, f"round {r + 1}/{rounds}: {label}")
    finally:
        if gc_was:
            gc.enable()
    return samples


def summarize(samples, baselines=C.baselines):
    """{key: {"ns", "ns_iqr", "min_ns", and per baseline column its median
    ratio and "<column>_iqr"}}; ``baselines(key)`` names each column's
    reference case."""
    out = {}
    for key, s in samples.items():
        q1, med, q3 = quartiles(s)
        out[key] = {"ns": med * 1e9, "ns_iqr": [q1 * 1e9, q3 * 1e9], "min_ns": min(s) * 1e9}
        for column, ref in baselines(key).items():
            if ref in samples:
                q1, med, q3 = quartiles([a / b for a, b in zip(s, samples[ref])])
                out[key][column] = med
                out[key][column + "_iqr"] = [q1, q3]
    return out


def median_of_rounds(stmt, ns, batch, rounds):
    """{"ns": median ns per statement over `rounds` calibrated batches,
    "ns_iqr": [first, third quartile]}."""
    t = timeit.Timer(stmt, globals=ns)
    n = _calibrate(t, batch)
    q1, med, q3 = quartiles([t.timeit(n) / n * 1e9 for _ in range(rounds)])
    return {"ns": med, "ns_iqr": [q1, q3]}


def scaling(capacities, fractions=(0.0, 0.5, 0.99), linear_scan_max=1_000_000,
            batch=0.01, rounds=3, progress=None):
    """ns per acquire + release against capacity, with a fraction of the
    slots in use: ObjectPool (O(1)) and the article's linear scan (O(n)).

    Returns a list of series {"pool", "in_use", "points": [{"capacity",
    "ns", "ns_iqr"}]}.
    """
    ours = {f: [] for f in fractions}
    scan = {f: [] for f in fractions}
    for cap in capacities:
        pool = ObjectPool(object, cap, prefill=cap)
        held = []
        for f in fractions:
            while len(held) < _in_use(cap, f):
                held.append(pool.acquire())
            ours[f].append(dict(capacity=cap, **median_of_rounds(
                C.PAIR.format("pool"), {"pool": pool}, batch, rounds)))
            _step(progress, f"ObjectPool, {cap:,d} slots, {f:.0%} in use")
        for o in held:
            pool.release(o)
        del pool, held
        if cap > linear_scan_max:
            _step(progress, "", len(fractions))
            continue
        sp = C.LinearScanPool(cap)
        for f in fractions:
            for c in sp.connections[:_in_use(cap, f)]:
                c.is_in_use = True
            scan[f].append(dict(capacity=cap, **median_of_rounds(
                "sp.release_connection(sp.get_connection())", {"sp": sp}, batch, rounds)))
            _step(progress, f"linear scan, {cap:,d} slots, {f:.0%} in use")
        del sp
    return ([{"pool": "ObjectPool", "in_use": f, "points": pts} for f, pts in ours.items()]
            + [{"pool": "linear scan", "in_use": f, "points": pts} for f, pts in scan.items()])


def _in_use(capacity, fraction):
    return min(int(capacity * fraction), capacity - 1)


def size_curve(sizes, batch=0.01, rounds=3, progress=None):
    """ns for the whole scratch-buffer path against buffer size, pooled and
    fresh.  Returns a list of series {"key", "label", "points":
    [{"buffer_size", "ns", "ns_iqr"}]}."""
    series = {}
    for size in sizes:
        for key, label, stmt, ns in C.path_cases(size, capacity=4):
            if key == "path_mv_reuse":
                continue
            s = series.setdefault(key, {"key": key, "label": label, "points": []})
            s["points"].append(dict(buffer_size=size,
                                    **median_of_rounds(stmt, ns, batch, rounds)))
        _step(progress, f"buffers of {C.size_text(size)}")
    return list(series.values())


def array_curve(sizes=C.ARRAY_SIZES, batch=0.01, rounds=5, progress=None):
    """ArrayPool against numpy, temporary arrays by size: ns of each case
    (C.array_cases), and each pooled case's ratio to its numpy row, median
    of per-round ratios with their quartiles.  Pooled and numpy cases run
    interleaved, round after round.  None without numpy."""
    series = {}
    for size in sizes:
        cases = C.array_cases(size)
        if cases is None:
            return None
        times = {key: [] for key, _, _, _ in cases}
        timers = {key: (timeit.Timer(stmt, globals=ns), label) for key, label, stmt, ns in cases}
        loops = {key: _calibrate(t, batch) for key, (t, _) in timers.items()}
        for _ in range(rounds):
            for key, (t, _) in timers.items():
                times[key].append(t.timeit(loops[key]) / loops[key] * 1e9)
        for key, (t, label) in timers.items():
            q1, med, q3 = quartiles(times[key])
            point = {"nbytes": size, "ns": med, "ns_iqr": [q1, q3]}
            base = C.ARRAY_PAIRS.get(key)
            if base is not None:
                ratios = [a / b for a, b in zip(times[key], times[base])]
                r1, rmed, r3 = quartiles(ratios)
                point.update(ratio=rmed, ratio_iqr=[r1, r3], vs=base)
            series.setdefault(key, {"key": key, "label": label, "points": []})["points"].append(point)
        _step(progress, f"arrays of {C.size_text(size)}")
    return list(series.values())


THREAD_POOLS = {
    "pool_ext ObjectPool": lambda: ObjectPool(object, 8, prefill=8),
    "list + threading.Lock": lambda: C.LockListPool(object, 8),
    "queue.SimpleQueue": lambda: C.simple_queue_pool(object, 8),
    "queue.LifoQueue": lambda: C.lifo_queue_pool(object, 8),
}


def threads(n=200_000, progress=None):
    """Total pairs per second with 2 threads (n/2 pairs each) and with 1
    thread (n pairs) on one pool of 8; one run each."""
    res = {}
    for name, make in THREAD_POOLS.items():
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
        _step(progress, f"threads, {name}")
    return res
