"""psycopg_pool.ConnectionPool and pool_ext.ObjectPool on one PostgreSQL
server: the same transactions through each, and each pool's own cost.

    pip install ".[bench]"
    eval "$(bash tools/pg_server.sh start /tmp/pg)"      # or any server
    python benchmarks/pg_compare.py [--dsn DSN] [--repeat 5] [--tx 4000] [--select 8x4]

What is measured (median of --repeat runs, with the lowest and highest;
each run takes every contender in turn, so drift spreads over all):

  checkout      one thread, a pool of one connection: an empty checkout and
                check-in, ``with pool.connection(): pass`` and
                ``with pool.lease(): pass``.  No round trip to the server:
                this is the pool's own cost per transaction.
  select 1      a transaction is a checkout, ``select 1`` and a check-in.
                T threads on a pool of C connections; with T <= C, the same
                threads on bare connections (one each, no pool) are the
                baseline, and the difference per transaction is what the
                pool adds.  With T > C the threads also wait for each other.
  waits         with T > C: how long each checkout waited, per pool:
                time.perf_counter() before ``with pool.connection()`` /
                ``with pool.lease()`` and again on entering the block (the
                pool's acquire and nothing else), every checkout of every
                run; p50, p99 and max per run, then the median of the runs
                (and the worst wait of all runs).  A fair pool keeps max
                near p99; one that lets a returning thread barge past the
                waiters shows a max of most of a run.

Both pools hold autocommit connections and leave them clean on check-in
(psycopg_pool checks the transaction status and rolls back if needed;
pool_ext is given reset=rollback(), which costs no round trip on an idle
connection).  pool_ext is also measured with track=True, to show what
tracking costs in a real workload.
"""
import argparse
import os
import statistics
import sys
import threading
import time

import psycopg
import psycopg_pool

import pool_ext
from pool_ext import ObjectPool


def connect(dsn):
    return psycopg.connect(dsn, autocommit=True, application_name="pool_ext bench")


class Bare:
    """No pool: each thread its own connection (the baseline)."""

    name = "bare connections"

    def __init__(self, dsn, size):
        self.conns = [connect(dsn) for _ in range(size)]

    def worker(self, k, n, waits):
        conn = self.conns[k]
        for _ in range(n):
            conn.execute("select 1").fetchone()

    def checkout(self, n):
        raise NotImplementedError

    def close(self):
        for conn in self.conns:
            conn.close()


class Pooled:
    """A pool: each transaction checks a connection out with self.checkout_cm()."""

    def worker(self, k, n, waits):
        """n transactions; appends each checkout's wait (seconds) to waits."""
        checkout = self.checkout_cm
        clock = time.perf_counter
        append = waits.append
        for _ in range(n):
            t0 = clock()
            with checkout() as conn:
                append(clock() - t0)
                conn.execute("select 1").fetchone()

    def checkout(self, n):
        checkout = self.checkout_cm
        for _ in range(n):
            with checkout():
                pass

    def close(self):
        self.pool.close()


class PsycopgPool(Pooled):
    name = "psycopg_pool"

    def __init__(self, dsn, size):
        self.pool = psycopg_pool.ConnectionPool(
            dsn, min_size=size, max_size=size, open=True,
            kwargs={"autocommit": True, "application_name": "pool_ext bench"})
        self.pool.wait(timeout=30)
        self.checkout_cm = self.pool.connection


class PoolExt(Pooled):
    name = "pool_ext"
    track = False

    def __init__(self, dsn, size):
        self.pool = ObjectPool(lambda: connect(dsn), size, prefill=size,
                               reset=lambda c: c.rollback(), destroy=lambda c: c.close(),
                               track=self.track)
        self.checkout_cm = self.pool.lease


class PoolExtTracked(PoolExt):
    name = "pool_ext track=True"
    track = True


POOLS = [PsycopgPool, PoolExt, PoolExtTracked]


def run_threads(target, threads, total, waits=None):
    """Seconds for `threads` threads doing total // threads transactions
    each; each checkout's wait (seconds) is appended to waits (a list)."""
    per = total // threads
    lists = [[] for _ in range(threads)]
    ts = [threading.Thread(target=target.worker, args=(k, per, lists[k]))
          for k in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    seconds = time.perf_counter() - t0
    if waits is not None:
        for one in lists:
            waits.extend(one)
    return seconds, per * threads


def percentiles(waits):
    """(p50, p99, max) of a list of waits, in milliseconds."""
    if not waits:
        return (float("nan"),) * 3
    w = sorted(waits)
    n = len(w)
    return (w[(n - 1) // 2] * 1e3, w[min(n - 1, int(n * 0.99))] * 1e3, w[-1] * 1e3)


def wait_summary(runs_waits):
    """runs_waits: [(p50, p99, max) per run] -> (median p50, median p99,
    median max, worst max) in milliseconds."""
    p50, p99, mx = zip(*runs_waits)
    return statistics.median(p50), statistics.median(p99), statistics.median(mx), max(mx)


def summary(values):
    """(median, lowest, highest) of per-transaction microseconds."""
    return statistics.median(values), min(values), max(values)


def interleaved(targets, repeat, run):
    """{name: [us per op, one per repeat]}: each repeat runs every target
    once, in turn, so that a drift of the machine (another process, the
    CPU's clock) spreads over all of them rather than biasing one."""
    runs = {t.name: [] for t in targets}
    for t in targets:
        run(t, 10)                         # warm-up: a tenth of a run
    for _ in range(repeat):
        for t in targets:
            runs[t.name].append(run(t, 1))
    return runs


def measure_checkout(dsn, repeat, n):
    """[(name, (median, low, high) us per checkout)], one thread."""
    def run(target, divide):
        k = n // divide
        t0 = time.perf_counter()
        target.checkout(k)
        return (time.perf_counter() - t0) / k * 1e6

    targets = [cls(dsn, 1) for cls in POOLS]
    try:
        runs = interleaved(targets, repeat, run)
    finally:
        for t in targets:
            t.close()
    return [(t.name, summary(runs[t.name])) for t in targets]


def measure_select(dsn, repeat, total, threads, size):
    """[(name, (median, low, high) us per tx, tx/s, waits)] for bare
    connections (if threads <= size) and each pool; waits: (p50, p99, max
    wait in ms, the median of the runs, and the worst wait of all runs), or
    None for bare connections."""
    waits = {}

    def run(target, divide):
        w = []
        seconds, done = run_threads(target, threads, total // divide, w)
        if divide == 1:                    # not the warm-up
            waits.setdefault(target.name, []).append(percentiles(w))
        return seconds / done * 1e6

    classes = ([Bare] if threads <= size else []) + POOLS
    targets = [cls(dsn, threads if cls is Bare else size) for cls in classes]
    try:
        runs = interleaved(targets, repeat, run)
    finally:
        for t in targets:
            t.close()
    out = []
    for t in targets:
        med = summary(runs[t.name])
        w = wait_summary(waits[t.name]) if t.name in waits and t.name != Bare.name else None
        out.append((t.name, med, 1e6 / med[0], w))
    return out


def threads_on(text):
    """'8x4' -> (8, 4)."""
    try:
        threads, size = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want TxC, e.g. 8x4") from None
    if threads < 1 or size < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: T and C must be at least 1")
    return threads, size


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", default=os.environ.get("POOL_PG_DSN"),
                    help="libpq conninfo (default: $POOL_PG_DSN)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tx", type=int, default=4000, help="transactions per run")
    ap.add_argument("--select", action="append", metavar="TxC", type=threads_on,
                    help="only this select 1 configuration, T threads on C connections "
                         "(repeatable; default: 1x1, 4x4 and 8x4); e.g. --select 8x4 "
                         "--tx 40000 for runs long enough to show a starved thread")
    args = ap.parse_args(argv)
    if not args.dsn:
        ap.error("no server: pass --dsn or set POOL_PG_DSN (tools/pg_server.sh starts one)")
    with psycopg.connect(args.dsn) as conn:
        version = conn.execute("show server_version").fetchone()[0]
    la = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"PostgreSQL {version}, psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), "
          f"psycopg_pool {psycopg_pool.__version__}, pool_ext {pool_ext.__version__}, "
          f"CPython {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; "
          f"median (lowest-highest) of {args.repeat} runs")

    print(f"\ncheckout + check-in, nothing else: us per operation ({args.tx * 5:,d} per run)")
    for name, (med, lo, hi) in measure_checkout(args.dsn, args.repeat, args.tx * 5):
        print(f"  {name:22s} {med:8.2f}  ({lo:.2f}-{hi:.2f})")

    for threads, size in args.select or ((1, 1), (4, 4), (8, 4)):
        print(f"\nselect 1 per transaction, {threads} thread(s), {size} connection(s): "
              f"us per transaction, transactions/s ({args.tx:,d} per run)")
        rows = measure_select(args.dsn, args.repeat, args.tx, threads, size)
        bare = rows[0][1][0] if rows[0][0] == Bare.name else None
        for name, (med, lo, hi), rate, _ in rows:
            extra = ""
            if bare is not None and name != Bare.name:
                extra = f"  pool overhead {med - bare:+.2f} us/tx"
            print(f"  {name:22s} {med:8.2f}  ({lo:.2f}-{hi:.2f})  {rate:9,.0f} tx/s{extra}")
        if threads > size:
            print(f"  wait per checkout, ms: p50 / p99 / max of each run, median of "
                  f"{args.repeat} runs (worst of all runs)")
            for name, _, _, w in rows:
                if w is not None:
                    p50, p99, mx, worst = w
                    print(f"  {name:22s} p50 {p50:8.3f}  p99 {p99:8.3f}  "
                          f"max {mx:9.3f}  ({worst:.3f})")


if __name__ == "__main__":
    main()
