"""Instructions per acquire/release pair, counted by valgrind's callgrind.

Timings on a shared machine are noisy; instruction counts are not.  For each
case (the same statements as ``pool-ext bench``, from
pool_ext.bench.cases) this runs the statement N and 2N times in a fresh
interpreter under ``valgrind --tool=callgrind`` and reports
(instructions(2N) - instructions(N)) / N: start-up, imports and set-up are the
same in both runs and cancel.

    python benchmarks/callgrind.py                     # every case, N=100k
    python benchmarks/callgrind.py obj_pair floor_pair # some cases
    python benchmarks/callgrind.py --python /tmp/perf-venv-atomic/bin/python
    python benchmarks/callgrind.py --keep DIR obj_pair # keep callgrind.out files
                                                       # for callgrind_annotate
    python benchmarks/callgrind.py -n 2000 arr_touch@16777216 np_touch@16777216
                                                       # ArrayPool's cases, at a size

Run it with the interpreter whose pool_ext you want to count, or pass
--python; the child runs in the temporary directory, so it imports the
installed package, never the source tree.
"""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

CHILD = r"""
import gc, sys, timeit
from pool_ext.bench.cases import core_cases, path_cases
key, n = sys.argv[1], int(sys.argv[2])
if "@" in key:   # an ArrayPool case at a size: arr_touch@16777216
    from pool_ext.bench.cases import array_cases
    key, size = key.split("@")
    cases = array_cases(int(size))
else:
    cases = path_cases() if key.startswith("path_") else core_cases()
stmt, ns = {k: (s, g) for k, _, s, g in cases}[key]
t = timeit.Timer(stmt, globals=ns)
t.timeit(1000)          # warm-up (specialisation, freelists): the same in both runs
gc.disable()
t.timeit(n)
"""

DEFAULT = ["floor_pair", "floor_pair_fastcall", "obj_pair", "obj_try_pair", "buf_pair", "list", "deque",
           "floor_with", "floor_with_self", "obj_with", "buf_with",
           "simplequeue", "locklist", "lifoqueue", "seed64", "seed1024",
           "path_mv", "path_np"]
#: cases that are 10-1000x slower run fewer iterations (the per-pair figure
#: is the same; only valgrind's wall time changes)
SCALE = {"lifoqueue": 10, "locklist": 4, "seed64": 10, "seed1024": 100}

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def count(python, key, n, keep=None):
    """Total instructions executed by one run of `key` with n iterations."""
    out = os.path.join(keep or tempfile.gettempdir(), f"callgrind.{key}.{n}.out")
    # fixed hashes; one BLAS thread (numpy's idle BLAS threads add noise)
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
         python, "-c", CHILD, key, str(n)],
        capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise RuntimeError(f"{key} n={n} failed:\n{proc.stderr[-2000:]}")
    m = _COLLECTED.search(proc.stderr)
    if not m:
        raise RuntimeError(f"no 'Collected' line for {key}:\n{proc.stderr[-2000:]}")
    if keep is None:
        os.unlink(out)
    return int(m.group(1))


def per_pair(python, key, n, keep=None, repeat=1):
    """(instructions(2n) - instructions(n)) / n; each count is the least of
    `repeat` runs (now and then a run counts a few hundred thousand extra
    instructions outside the loop, which would add noise to the difference)."""
    n = max(1000, n // SCALE.get(key, 1))
    a = min(count(python, key, n, keep) for _ in range(repeat))
    b = min(count(python, key, 2 * n, keep) for _ in range(repeat))
    return (b - a) / n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cases", nargs="*", default=DEFAULT)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("-n", type=int, default=100_000, help="N (the runs are N and 2N)")
    p.add_argument("-j", type=int, default=2, help="valgrind runs at once")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per count, the least is kept (default 1; 3 for stable figures)")
    p.add_argument("--keep", metavar="DIR", help="keep the callgrind.out files here")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if shutil.which("valgrind") is None:
        p.error("valgrind is not installed")
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(args.j) as ex:
        futs = {k: ex.submit(per_pair, args.python, k, args.n, args.keep, args.repeat)
                for k in args.cases}
        res = {k: f.result() for k, f in futs.items()}
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    base = res.get("floor_pair")
    print(f"instructions per statement ({args.python}, N={args.n:,d}):")
    for k, v in res.items():
        ratio = f"{v / base:8.2f}x empty method call" if base else ""
        print(f"  {k:18s} {v:10.1f} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
