"""Thread scaling: acquire/release pairs per second with 1, 2 (and more)
threads, all on one shared pool and on one pool per thread, for ObjectPool,
BufferPool and ArrayPool (arrays.empty of 4 KiB).

On a free-threaded CPython (3.13t, 3.14t) threads really run at once: the
shared pool's figures show what sharing it costs, the per-thread pools what
the machine gives when nothing is shared.  On a GIL build one thread runs at
a time, so neither scales (the run says which build it is).  The measuring
code is pool_ext.bench.threads, which `pool-ext bench --threads` runs too.

    python benchmarks/thread_scaling.py                   # a table
    python benchmarks/thread_scaling.py --json out.json   # and the figures

tests.yml runs it on its free-threaded jobs and uploads the JSON as the
artifact "thread-scaling-<os>-<python>"; .ci/run runs it in its
free-threaded leg (docs/performance.md, "Threads").
"""
import argparse
import json
import sys

from pool_ext.bench import threads


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=200_000, help="pairs per thread (200,000)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", default="1,2", help="thread counts, first is the base (1,2)")
    p.add_argument("--kinds", default=",".join(threads.KINDS),
                   help="pool kinds (ObjectPool,BufferPool,ArrayPool)")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    result = threads.run(pairs=args.pairs, rounds=args.rounds,
                         threads=tuple(map(int, args.threads.split(","))),
                         kinds=args.kinds.split(","))
    print(threads.format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
