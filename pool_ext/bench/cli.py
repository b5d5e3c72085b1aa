"""The ``pool-ext`` command (also ``python -m pool_ext``).

    pool-ext bench                 the table: well under a minute
    pool-ext bench --quick         a few seconds, fewer points
    pool-ext bench --plot          also draw pool_ext_bench.png (needs matplotlib)
    pool-ext bench --json          the figures as JSON instead of the table
    pool-ext bench --contention    fairness and hand-off cost with fewer objects than
                                   callers (about 20 s; --duration sets each round's)
"""
import argparse
import json
import os
import sys
import time

from pool_ext import __version__
from pool_ext.bench import cases as C
from pool_ext.bench import contention, memory, report, shared, threads, timing

DEFAULT_PLOT = "pool_ext_bench.png"


def shorten(text, width):
    """text, or its words that fit in width followed by '...': never cut
    inside a word."""
    if len(text) <= width:
        return text
    cut = text[:width - 3]
    if " " in cut and not text[width - 3].isspace():
        cut = cut[:cut.rindex(" ")]
    return cut.rstrip(" ,:;") + "..."


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line per
    10% in a log."""

    LABEL = 48   # characters of the step's label; a longer one ends at a word

    def __init__(self, total, enabled=True, width=30, stream=None):
        self.total = max(total, 1)
        self.done = 0
        self.width = width
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = -1

    def step(self, text="", n=1):
        self.done = min(self.done + n, self.total)
        if not self.enabled:
            return
        frac = self.done / self.total
        pct = int(frac * 100)
        if not self.tty and pct // 10 == self._last // 10 and self.done < self.total:
            return
        self._last = pct
        line = (f"[{'#' * int(frac * self.width):<{self.width}}] {pct:3d}% "
                f"{shorten(text, self.LABEL):<{self.LABEL}}")
        self.stream.write("\r" + line if self.tty else line.rstrip() + "\n")
        self.stream.flush()

    def close(self):
        if self.enabled and self.tty:
            self.stream.write("\r" + " " * (self.width + 8 + self.LABEL) + "\r")
            self.stream.flush()


def run(rounds=15, batch=0.02, capacities=None, sizes=None, with_threads=True,
        with_memory=True, progress=True, array_sizes=None, with_shared=True):
    """Runs the whole benchmark; returns the figures as a JSON-ready dict."""
    if capacities is None:
        capacities = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000]
    if sizes is None:
        sizes = [1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24]
    if array_sizes is None:
        array_sizes = C.ARRAY_SIZES
    path_size = 1 << 20
    cases = C.core_cases() + C.path_cases(path_size)
    total = (len(cases) * (rounds + 1) + 2 * 3 * len(capacities) + len(sizes) + len(array_sizes)
             + (len(timing.THREAD_POOLS) if with_threads else 0) + (1 if with_memory else 0)
             + (1 if with_shared else 0))
    bar = Progress(total, enabled=progress)
    busy = report.overloaded(report.load_average(), os.cpu_count())
    if busy:
        print(f"pool-ext bench: warning: {busy}", file=sys.stderr)
    t0 = time.perf_counter()
    result = {"machine": report.machine(), "settings": {"rounds": rounds, "batch": batch},
              "columns": C.COLUMNS, "path_buffer_size": path_size}
    summary = timing.summarize(timing.measure(cases, rounds=rounds, batch=batch, progress=bar))
    result["cases"] = {key: {"label": label, "code": stmt, **summary[key]}
                       for key, label, stmt, _ in cases}
    result["scaling"] = timing.scaling(capacities, progress=bar)
    result["sizes"] = timing.size_curve(sizes, progress=bar)
    result["arrays"] = timing.array_curve(array_sizes, rounds=max(3, rounds // 3), progress=bar)
    if with_shared:
        result["shared"] = shared.handoff(rounds=max(3, rounds // 3), progress=bar)
    if with_threads:
        result["threads"] = timing.threads(progress=bar)
    if with_memory:
        result["memory"] = memory.memory_in_subprocess()
        bar.step("memory")
    bar.close()
    result["seconds"] = time.perf_counter() - t0
    result["machine"]["loadavg_end"] = report.load_average()
    return result


def build_parser(prog="pool-ext"):
    parser = argparse.ArgumentParser(
        prog=prog, description="pool_ext: lock-free object, buffer and array pools for Python.")
    parser.add_argument("--version", action="version", version=f"pool_ext {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    b = sub.add_parser(
        "bench", help="time pool_ext against the pools people write in Python",
        description="Times acquire + release with pool_ext's pools, with Python's "
                    "containers and with pools written in Python, interleaved round "
                    "after round, and prints each median time, ± half the interquartile "
                    "range, with its ratio to an empty method call (the fastest any "
                    "extension can be) and how many times faster ObjectPool is; then "
                    "ArrayPool's temporary arrays against numpy's, by size; then (Linux) a "
                    "64 MiB array handed to another process and back, SharedBufferPool "
                    "against pickling.")
    b.add_argument("--rounds", type=int, default=None,
                   help="interleaved timing rounds; medians are reported (default 15; "
                        "3 with --contention)")
    b.add_argument("--batch", type=float, default=0.02,
                   help="seconds per timed batch (default 0.02)")
    b.add_argument("--quick", action="store_true",
                   help="a few seconds: 3 rounds, fewer points, no threads or memory")
    b.add_argument("--json", action="store_true", help="print JSON instead of the table")
    b.add_argument("--plot", nargs="?", const=DEFAULT_PLOT, metavar="FILE",
                   help=f"also draw the curves into FILE (default {DEFAULT_PLOT} in this "
                        "directory; needs matplotlib: pip install 'pool-ext[plot]')")
    b.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    b.add_argument("--contention", action="store_true",
                   help="instead: 8 threads on a pool of 2 and 64 tasks on a pool of 8, "
                        "fairness and waits against a fair pool written in Python, and "
                        "the cost of a contended async hand-off (about 20 s)")
    b.add_argument("--threads", action="store_true",
                   help="instead: acquire/release pairs per second with 1 and 2 threads, "
                        "on one shared pool and on a pool per thread (ObjectPool, "
                        "BufferPool, ArrayPool); on a free-threaded CPython (3.13t, "
                        "3.14t) threads run at once")
    b.add_argument("--duration", type=float, default=1.5,
                   help="with --contention: seconds per round of each scenario "
                        "(default 1.5)")
    return parser


def run_contention(duration, rounds, progress=True):
    """The contention benchmark (pool_ext.bench.contention) with a progress
    bar and the load-average warning; its JSON-ready dict."""
    busy = report.overloaded(report.load_average(), os.cpu_count())
    if busy:
        print(f"pool-ext bench: warning: {busy}", file=sys.stderr)
    bar = Progress(contention.steps(rounds), enabled=progress)
    result = contention.run(duration=duration, rounds=rounds, progress=bar)
    bar.close()
    return result


def bench_contention(args, parser):
    if args.plot:
        parser.error("--plot draws the main benchmark's curves, not --contention's")
    if args.duration <= 0:
        parser.error("--duration must be above 0")
    rounds = args.rounds or 3
    duration = min(args.duration, 0.5) if args.quick else args.duration
    result = run_contention(duration, rounds, progress=not args.no_progress)
    if args.json:
        json.dump(contention.jsonable(result), sys.stdout, indent=1, default=str,
                  ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(report.format_contention(result))
    return 0


def bench_threads(args, parser):
    if args.plot:
        parser.error("--plot draws the main benchmark's curves, not --threads'")
    if args.contention:
        parser.error("--threads and --contention are two runs: give one")
    rounds = args.rounds or (3 if args.quick else 5)
    pairs = 50_000 if args.quick else 200_000
    busy = report.overloaded(report.load_average(), os.cpu_count())
    if busy:
        print(f"pool-ext bench: warning: {busy}", file=sys.stderr)
    bar = Progress(threads.steps(rounds), enabled=not args.no_progress)
    result = threads.run(pairs=pairs, rounds=rounds, progress=bar)
    bar.close()
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(threads.format_table(result))
    return 0


def bench(args, parser):
    if args.threads:
        return bench_threads(args, parser)
    if args.contention:
        return bench_contention(args, parser)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'pool-ext[plot]'")
    if args.quick:
        result = run(rounds=3, batch=0.005, capacities=[1, 100, 10_000, 1_000_000],
                     sizes=[1 << 12, 1 << 20, 1 << 24], with_threads=False,
                     array_sizes=[64, 1 << 16, 1 << 24],
                     with_memory=False, progress=not args.no_progress)
    else:
        result = run(rounds=args.rounds or 15, batch=args.batch, progress=not args.no_progress)
    if args.json:
        json.dump(result, sys.stdout, indent=1, default=str, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(report.format_table(result))
    if args.plot:
        from pool_ext.bench.plot import plot
        plot(result, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def main(argv=None, prog="pool-ext"):
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return bench(args, parser)
