"""ArrayPool against numpy: the figures of docs/performance.md, with spread.

    python benchmarks/arrays_report.py                # everything, ~5 min
    python benchmarks/arrays_report.py --rounds 7 --loop-repeats 1

1. Temporary arrays of 64 B .. 64 MiB (pool_ext.bench.cases.array_cases):
   every case timed once per round, interleaved, round after round; each
   pooled case's ratio to its numpy case is the median of the per-round
   ratios, with the quartiles.
2. The numpy loop: 1,000 iterations of np.multiply(a, b, out=X.empty_like(a))
   for X = ArrayPool and numpy, 4 MiB and 64 MiB of float64, the two loops
   alternating, --loop-repeats times; the ratio per repeat.
"""
import argparse
import statistics
import time

import numpy as np

from pool_ext import ArrayPool
from pool_ext.bench import timing
from pool_ext.bench.cases import ARRAY_SIZES, size_text


def loop(nbytes, pooled, iterations):
    n = nbytes // 8
    a, b = np.ones(n), np.full(n, 2.0)
    arrays = ArrayPool()
    like = arrays.empty_like if pooled else np.empty_like
    multiply = np.multiply
    multiply(a, b, out=like(a))        # warm-up: the pool's block, numpy's heap
    t0 = time.perf_counter()
    for _ in range(iterations):
        multiply(a, b, out=like(a))
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--batch", type=float, default=0.05)
    p.add_argument("--loop-repeats", type=int, default=3)
    p.add_argument("--iterations", type=int, default=1000)
    args = p.parse_args()

    series = timing.array_curve(ARRAY_SIZES, batch=args.batch, rounds=args.rounds)
    print(f"Temporary arrays: median of {args.rounds} interleaved rounds [quartiles]")
    for s in series:
        print(f"  {s['label']}")
        for pt in s["points"]:
            line = (f"    {size_text(pt['nbytes']):>7s}  {pt['ns']:12.0f} ns "
                    f"[{pt['ns_iqr'][0]:.0f}, {pt['ns_iqr'][1]:.0f}]")
            if "ratio" in pt:
                line += (f"   x{pt['ratio']:.3f} of numpy "
                         f"[{pt['ratio_iqr'][0]:.3f}, {pt['ratio_iqr'][1]:.3f}]")
            print(line)

    print(f"\nnp.multiply(a, b, out=X.empty_like(a)), {args.iterations} iterations, "
          f"{args.loop_repeats} repeats, alternating")
    for nbytes in (4 << 20, 64 << 20):
        pooled, numpy = [], []
        for _ in range(args.loop_repeats):
            pooled.append(loop(nbytes, True, args.iterations))
            numpy.append(loop(nbytes, False, args.iterations))
        ratios = [n / p for p, n in zip(pooled, numpy)]
        print(f"  {size_text(nbytes):>7s} float64: ArrayPool {statistics.median(pooled):.3f} s "
              f"{sorted(round(x, 3) for x in pooled)}, numpy {statistics.median(numpy):.3f} s "
              f"{sorted(round(x, 3) for x in numpy)}; numpy / ArrayPool "
              f"{statistics.median(ratios):.2f}x {sorted(round(r, 2) for r in ratios)}")


if __name__ == "__main__":
    main()
