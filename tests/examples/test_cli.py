"""The pool-ext command (and python -m pool_ext): the README's first command
runs, briefly here, and prints what it says in a user's words."""
import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from helpers import ROOT

QUICK = ["bench", "--quick", "--no-progress", "--rounds", "3"]


def pool_ext_command():
    """The console script pip installed with this interpreter's pool_ext: next
    to sys.executable in a virtual environment, else in the scripts directory."""
    dirs = [Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))]
    for d in dirs:
        for name in ("pool-ext", "pool-ext.exe"):
            if (d / name).is_file():
                return str(d / name)
    pytest.skip(f"no pool-ext script in {dirs} (pool_ext not installed by pip here)")


def run(args, cwd):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def in_source_tree():
    return (ROOT / "pool_ext" / "__init__.py").is_file()


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """`pool-ext bench --quick`'s table, typed at the repository root when
    there is one (README: `pip install . && pool-ext bench`)."""
    cwd = ROOT if in_source_tree() else tmp_path_factory.mktemp("bench")
    return run([pool_ext_command(), *QUICK], cwd).stdout


def test_python_m_bench_quick_json(tmp_path):
    report = json.loads(run([sys.executable, "-m", "pool_ext", *QUICK, "--json"],
                            tmp_path).stdout)
    cases = report["cases"]
    for name in ("floor_pair", "obj_pair", "buf_pair", "list", "deque", "simplequeue",
                 "lifoqueue", "seed64"):
        assert cases[name]["ns"] > 0, name
        assert cases[name]["ns_iqr"][0] <= cases[name]["ns"] <= cases[name]["ns_iqr"][1]
        assert cases[name]["label"], name
    assert report["machine"]["atomics"].startswith(("plain", "atomic"))


def test_bench_table_from_the_repository_root(table):
    import pool_ext
    if not in_source_tree():
        pytest.skip("tests copied away from the source tree (wheel tests)")
    assert "ObjectPool: pool.release(pool.acquire())" in table
    assert f"C core: {pool_ext.ATOMICS}" in table


def test_the_table_speaks_a_users_words(table):
    out = table
    for label in ("empty method call (the fastest any extension can be)",
                  "empty with-block (the fastest any extension can be)",
                  "the linear-scan pool from the Object Pool pattern article, 64 slots",
                  "collections.deque, no lock: d.append(d.pop())",
                  "queue.SimpleQueue as a pool",
                  "BufferPool: acquire, memoryview, release"):
        assert label in out
    for word in ("target", "missed", "floor", "seed", "issue"):
        assert not re.search(rf"\b{word}", out, re.IGNORECASE), word
    # beside every figure, its spread: "70.8±4.3", "1.53±0.10x", "371±10 ns"
    rows = 0
    for line in out.splitlines():
        row = re.match(r"(\s+\d.*?)  (?=[A-Za-z])", line)   # the figures, then the label
        if row:
            rows += 1
            for figure in re.findall(r"[\d.,]*\d(?:±[\d.,]*\d)?", row.group(1)):
                assert "±" in figure, line
    assert rows >= 16 + 3 + 6   # the cases, the buffer paths (3 without numpy), the curves


def test_no_command_prints_the_help(tmp_path):
    proc = subprocess.run([pool_ext_command()], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode in (0, 2)
    assert "usage: pool-ext" in proc.stdout
    assert "bench" in proc.stdout and "error" not in proc.stdout + proc.stderr


def test_plot_without_a_name_writes_pool_ext_bench_png(tmp_path):
    pytest.importorskip("matplotlib")
    proc = run([pool_ext_command(), *QUICK, "--plot"], tmp_path)
    png = tmp_path / "pool_ext_bench.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "pool_ext_bench.png" in proc.stderr


def minimal_result(**machine):
    """The least `pool-ext bench --json` result report.format_table reads."""
    m = {"pool_ext": "0", "implementation": "CPython", "python": "3", "cpus": 2,
         "atomics": "plain", "numpy": "2.0", "loadavg": [0.5, 0.5, 0.5],
         "loadavg_end": [0.6, 0.5, 0.5]}
    m.update(machine)
    return {"machine": m, "cases": {}, "seconds": 1.0}


def test_a_loaded_machine_is_warned_about():
    from pool_ext.bench import report
    assert "WARNING" not in report.format_table(minimal_result())
    for load in ({"loadavg": [2.5, 1, 1]}, {"loadavg_end": [3.1, 1, 1]}):
        first = report.format_table(minimal_result(**load)).splitlines()[0]
        assert first.startswith("WARNING: the load average is ") and "unreliable" in first


def test_without_numpy_the_table_says_what_is_missing():
    from pool_ext.bench import report
    table = report.format_table(minimal_result(numpy=None))
    assert "not measured, numpy is not installed here (pip install numpy" in table


def test_progress_labels_end_at_a_word():
    from pool_ext.bench.cli import shorten
    label = "the linear-scan pool from the Object Pool pattern article, 64 slots"
    assert shorten(label, 48) == "the linear-scan pool from the Object Pool..."
    assert shorten("short", 48) == "short"
    for width in range(10, len(label)):
        cut = shorten(label, width)
        assert len(cut) <= width and label.startswith(cut[:-3].rstrip(" ,"))
        assert label[len(cut) - 3] in " ,", cut    # the cut is at a word's end


def test_bench_contention_prints_its_rows(tmp_path):
    """`pool-ext bench --contention`, with short rounds: the three scenarios'
    rows, each target with PASS or MISS.  Structure only: no figure is
    asserted (they are timings)."""
    out = run([pool_ext_command(), "bench", "--contention", "--duration", "0.2",
               "--rounds", "1", "--no-progress"], tmp_path).stdout
    for title in ("Threads: 8 threads share a pool of 2", "Tasks: 64 asyncio tasks share a pool of 8",
                  "Contended async hand-off: 2 tasks share a pool of 1"):
        assert title in out
    labels = ("Jain's fairness index over the hand-outs per caller (1: all equal)",
              "most hand-outs of one caller / fewest (inf: one got none)",
              "median wait for an object", "99th percentile wait", "longest wait",
              "hand-outs per second")
    for label in labels:
        rows = re.findall(rf"^\s+\S.*  {re.escape(label)}$", out, re.MULTILINE)
        assert len(rows) == 2, label      # threads and tasks
    assert out.count("longest wait / the FIFO ideal (6.00 ms)") == 1
    assert "throughput, pool_ext / the Python pool" in out
    verdicts = re.findall(r"  (?:>=|<=) [\d.]+  (PASS|MISS)  ", out)
    assert len(verdicts) == 4 + 2 + out.count("changes of hands per hand-out")
    assert re.search(r"^(\s+\S+ \S*s){3}\s+\S+x\s+>= 1.5  (PASS|MISS)  asyncio$",
                     out, re.MULTILINE)


def test_bench_threads_prints_its_rows(tmp_path):
    """`pool-ext bench --threads --quick`: a row per pool kind, sharing and
    thread count, each with its ratio to one thread.  Structure only."""
    out = run([pool_ext_command(), "bench", "--threads", "--quick", "--rounds", "1",
               "--no-progress"], tmp_path).stdout
    assert out.startswith("Thread scaling: CPython ")
    rows = re.findall(r"^  (\w+)\s+(one shared pool |a pool per thread)  (\d) thread\(s\): +"
                      r"[\d.]+ M pairs/s \(range [\d.]+-[\d.]+\)  [\d.]+x one thread$",
                      out, re.MULTILINE)
    kinds = {"ObjectPool", "BufferPool"} | ({"ArrayPool"} if "left out" not in out else set())
    assert {r[0] for r in rows} == kinds
    assert len(rows) == len(kinds) * 4     # shared or not, 1 or 2 threads


def test_contention_fairness_figures():
    """Jain's index and most / fewest: the arithmetic, no timing."""
    from pool_ext.bench import contention
    assert contention.jain([5, 5, 5, 5]) == 1.0
    assert contention.jain([8, 0, 0, 0]) == 0.25
    assert contention.max_min([3, 2]) == 1.5
    assert contention.max_min([3, 0]) == float("inf")
    assert contention.jsonable({"a": [float("inf"), 1.0]}) == {"a": [None, 1.0]}
