"""Contention: a pool with fewer objects than callers (issue 17).

Three scenarios, each on pool_ext and on a fair pool written in Python (a
release hands its object straight to the oldest waiter), in interleaved
rounds, medians reported:

* 8 threads share a pool of 2, each holding its object 2 ms (time.sleep)
  and coming straight back: throughput, Jain's fairness index over the
  hand-outs per thread, most / fewest hand-outs per thread, p50 / p99 / max
  wait, and the longest wait as a multiple of the FIFO ideal (6 ms);
* 64 asyncio tasks share a pool of 8, each holding for one loop iteration
  (await asyncio.sleep(0)): the same figures;
* 2 tasks share a pool of 1 the same way: the time per contended hand-out
  under asyncio's loop and uvloop (if installed), and how often the object
  actually changed hands.

Beside each figure, issue 17's target and PASS/MISS (pool_ext's figure).
The measuring code is pool_ext.bench.contention (``pool-ext bench
--contention`` runs a shorter version); this script runs longer rounds.

    python benchmarks/contention.py                     # the table, 4 s rounds
    python benchmarks/contention.py --duration 1.5 --rounds 5
    python benchmarks/contention.py --json              # the figures as JSON

Importable too: ``run(duration, rounds)`` returns the figures and
``format_table(result)`` the table.
"""
import argparse
import json
import os
import sys

from pool_ext.bench import report
from pool_ext.bench.contention import (  # noqa: F401  (re-exported)
    FairAsyncPool, FifoPool, handoff, jain, jsonable, max_min, run, tasks, threads)

format_table = report.format_contention


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=4.0,
                   help="seconds per round of the threads and tasks scenarios (default 4)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--handoffs", type=int, default=20_000,
                   help="hand-outs per round of the async hand-off (default 20,000)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = p.parse_args(argv)
    busy = report.overloaded(report.load_average(), os.cpu_count())
    if busy:
        print(f"contention.py: warning: {busy}", file=sys.stderr)
    result = run(duration=args.duration, rounds=args.rounds, handoffs=args.handoffs)
    if args.json:
        json.dump(jsonable(result), sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
