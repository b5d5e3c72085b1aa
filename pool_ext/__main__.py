"""python -m pool_ext bench: pool_ext side by side with the pools people
write by hand, as ratios to an empty-bodied floor.  (benchmarks/ holds the
pytest-benchmark suite; the logic lives in pool_ext._bench.)"""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pool_ext")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="time pool_ext against pure-Python pools",
                       description="Times acquire/release pairs of pool_ext and of "
                                   "hand-written pools, interleaved, and prints ns per "
                                   "pair, the ratio to an empty-bodied floor and the "
                                   "speed-up over each pure-Python pool.")
    b.add_argument("--rounds", type=int, default=15,
                   help="interleaved timing rounds; medians are reported (default 15)")
    b.add_argument("--batch", type=float, default=0.02,
                   help="seconds per timed batch (default 0.02)")
    b.add_argument("--quick", action="store_true", help="a few seconds, fewer points")
    b.add_argument("--json", action="store_true", help="print JSON instead of the table")
    b.add_argument("--plot", metavar="OUT.png",
                   help="draw the O(1)-vs-O(n) and size curves (needs matplotlib: "
                        "pip install 'pool-ext[plot]')")
    b.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'pool-ext[plot]'")
    from pool_ext import _bench
    return _bench.main(args)


if __name__ == "__main__":
    sys.exit(main())
