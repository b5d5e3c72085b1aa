"""The table ``pool-ext bench`` prints, and the description of the machine
at its head.  Each time is shown as its median over the rounds, ± half the
interquartile range; the label comes last, so a narrow terminal wraps only
the words."""
import os
import platform
import sys

from pool_ext import ATOMICS, __version__
from pool_ext.bench import cases as C


def machine():
    """What the figures were measured on."""
    np = C.numpy_or_none()
    return {
        "pool_ext": __version__, "atomics": ATOMICS,
        "python": sys.version.split()[0], "implementation": platform.python_implementation(),
        "gil_enabled": getattr(sys, "_is_gil_enabled", lambda: True)(),
        "platform": platform.platform(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "numpy": None if np is None else np.__version__,
        "loadavg": load_average(),
    }


def load_average():
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def overloaded(loadavg, cpus):
    """A warning if the load average (1 minute) exceeds the CPU count:
    other work then competes for the cores and the timings are unreliable;
    '' otherwise (or where there is no load average)."""
    if not loadavg or not cpus or loadavg[0] <= cpus:
        return ""
    return (f"the load average is {loadavg[0]:.2f}, above the {cpus} CPUs: other programs "
            f"compete for the cores, so these figures are unreliable; run again on an idle "
            f"machine")


def _half(iqr):
    return (iqr[1] - iqr[0]) / 2


def _unit(ns):
    """(unit, ns per unit) for a time of ns nanoseconds."""
    for unit, scale in (("ns", 1), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)):
        if ns < scale * 1000 or unit == "s":
            return unit, scale


def _duration(ns, iqr):
    """'24.0±0.1 ms': the unit follows the size."""
    unit, scale = _unit(ns)
    v, h = ns / scale, _half(iqr) / scale
    d = 0 if v >= 100 else 1 if v >= 10 else 2
    return f"{v:.{d}f}±{h:.{d}f} {unit}"


def _ratio(v, column):
    if column not in v:
        return ""
    return f"{v[column]:.2f}±{_half(v[column + '_iqr']):.2f}x"


_TITLES = {"x_empty": "x empty", "x_object_pool": "ObjectPool faster"}
_SECTIONS = {
    "pair": "One acquire + release per statement.  x empty: its time / the empty method "
            "call's.",
    "with": "One with-block per statement.  x empty: its time / the empty with-block's.",
    "python": "The same pair on Python's containers and on pools written in Python.  "
              "ObjectPool faster: its time / ObjectPool's pair, so how many times faster "
              "ObjectPool is; below 1, ObjectPool is slower (a bare list or deque is no "
              "pool: it checks nothing).",
}


def _header(result):
    m = result["machine"]
    la = m.get("loadavg")
    end = m.get("loadavg_end")
    rounds = result.get("settings", {}).get("rounds", "the")
    load = "n/a" if la is None else f"{la[0]:.2f}"
    if la is not None and end is not None:
        load += f" at the start, {end[0]:.2f} at the end"
    lines = [f"pool_ext {m['pool_ext']}, {m['implementation']} {m['python']}, "
             f"{m['cpus']} CPUs, load average {load}",
             f"C core: {m['atomics']}",
             f"Each time is the median of {rounds} rounds ± half the interquartile range "
             "(the middle half of the rounds)."]
    busy = overloaded(la, m["cpus"]) or overloaded(end, m["cpus"])
    if busy:
        lines.insert(0, f"WARNING: {busy}.")
    return lines


def _cases(result):
    c = result["cases"]
    lines = []
    for kind, title in _SECTIONS.items():
        rows = [(key, v) for key, v in c.items() if C.group(key) == kind]
        columns = [col for col in ("x_empty", "x_object_pool") if any(col in v for _, v in rows)]
        lines += ["", title, f"{'ns':>16s}" + "".join(f"  {_TITLES[col]:>14s}" for col in columns)]
        for key, v in rows:
            ns = f"{v['ns']:.1f}±{_half(v['ns_iqr']):.1f}"
            lines.append(f"{ns:>16s}" + "".join(f"  {_ratio(v, col):>14s}" for col in columns)
                         + f"  {v['label']}")
    paths = [(key, v) for key, v in c.items() if C.group(key) == "path"]
    if paths:
        size = C.size_text(result.get("path_buffer_size", 1 << 20))
        lines += ["", f"Get a {size} scratch buffer, view it, give it back."]
        lines += [f"{_duration(v['ns'], v['ns_iqr']):>16s}  {v['label']}" for key, v in paths]
    return lines


def _curves(title, series, x_key, x_text, label):
    """Rows of series, columns of x values; a missing point shows as '-'."""
    xs = sorted({p[x_key] for s in series for p in s["points"]})
    lines = ["", title, "".join(f"{x_text(x):>16s}" for x in xs)]
    for s in series:
        pts = {p[x_key]: p for p in s["points"]}
        lines.append("".join(f"{_duration(pts[x]['ns'], pts[x]['ns_iqr']):>16s}"
                             if x in pts else f"{'-':>16s}" for x in xs) + "  " + label(s))
    return lines


def _arrays(series):
    """ArrayPool's rows against numpy's: time, and the ratio to numpy."""
    xs = sorted({p["nbytes"] for s in series for p in s["points"]})
    lines = ["", "Temporary arrays, pooled (ArrayPool) or new (numpy), against their size; "
                 "under each ArrayPool row, its time / the numpy row's below it (median of "
                 "per-round ratios, ± half the IQR): below 1, ArrayPool is faster; above 1, "
                 "slower.",
             "".join(f"{C.size_text(x):>16s}" for x in xs)]
    for s in series:
        pts = {p["nbytes"]: p for p in s["points"]}
        lines.append("".join(f"{_duration(pts[x]['ns'], pts[x]['ns_iqr']):>16s}"
                             if x in pts else f"{'-':>16s}" for x in xs) + "  " + s["label"])
        if "ratio" in s["points"][0]:
            lines.append("".join(
                f"{pts[x]['ratio']:.2f}±{_half(pts[x]['ratio_iqr']):.2f}x".rjust(16)
                if x in pts else f"{'-':>16s}" for x in xs) + "    (time / numpy's)")
    if 1 << 24 in xs:
        lines.append("At 16 MiB both sides reuse resident memory (glibc keeps numpy's block "
                     "below its mmap threshold): the write-each-page ratio swings either way, "
                     "from about 0.7x to 2x, from run to run; docs/performance.md, "
                     "\"Temporary arrays\", says why.")
    return lines


def _shared(sh):
    """SharedBufferPool's rows: a big array to another process and back."""
    title = (f"SharedBufferPool: a {C.size_text(sh['nbytes'])} float64 array to a worker "
             "process and back through a multiprocessing Pipe, time per round trip")
    if "skipped" in sh or "error" in sh:
        return ["", f"{title}: not measured ({sh.get('skipped') or sh.get('error')})."]
    s, p = sh["shared"], sh["plain"]
    r, h = sh["ratio"], _half(sh["ratio_iqr"])
    ratio = f"{r:,.0f}±{h:,.0f}x" if r >= 100 else f"{r:.1f}±{h:.1f}x"
    return ["", f"{title} ({sh['start_method']} start).",
            f"{_duration(s['ns'], s['ns_iqr']):>16s}  SharedBufferPool array: its block is "
            "sent, nothing copied",
            f"{_duration(p['ns'], p['ns_iqr']):>16s}  plain numpy array: pickled, a copy each way",
            f"{ratio:>16s}  faster: the plain round trip's time / SharedBufferPool's (median "
            "of per-round ratios)"]


def _threads(result):
    gil = "" if not result["machine"].get("gil_enabled", True) else \
        "; with the GIL one thread runs at a time"
    lines = ["", f"Pairs per second, all threads together, on one pool of 8 (one run each{gil}).",
             f"{'1 thread':>12s}{'2 threads':>12s}{'2 / 1':>8s}"]
    for name, v in result["threads"].items():
        lines.append(f"{v['1 thread'] / 1e6:8.2f} M/s{v['2 threads'] / 1e6:8.2f} M/s"
                     f"{v['ratio']:7.2f}x  {name}")
    return lines


def _memory(mo):
    def num(x):
        return "n/a" if x is None else f"{x:.1f}"
    op, bp = mo["object_pool"], mo["buffer_pool"]
    return ["", f"Memory per slot, pooled objects and buffers not counted "
                f"(capacity {mo['capacity']:,d}):",
            f"  ObjectPool  by layout {op['by_layout']:.0f} B, measured RSS {num(op['rss'])} B, "
            f"Python heap {op['python_heap']:.1f} B",
            f"  BufferPool  by layout {bp['by_layout']:.0f} B (stride {bp['stride']} for "
            f"{bp['buffer_size']} B buffers), measured RSS {num(bp['rss'])} B"]


def format_table(result):
    lines = _header(result) + _cases(result)
    if result.get("scaling"):
        lines += _curves(
            "Time per acquire + release against the number of slots, with a share of them "
            f"in use: ObjectPool, and {C.LINEAR_SCAN}.",
            result["scaling"], "capacity", lambda x: f"{x:,d}",
            lambda s: f"{s['pool']}, {s['in_use']:.0%} in use")
    if result.get("sizes"):
        lines += _curves("Time to get a scratch buffer, view it and give it back, "
                         "against its size: pooled or new.",
                         result["sizes"], "buffer_size", C.size_text, lambda s: s["label"])
    if result.get("arrays"):
        lines += _arrays(result["arrays"])
    elif result["machine"].get("numpy") is None:
        lines += ["", "Temporary arrays (ArrayPool against numpy), and the numpy rows of the "
                      "scratch-buffer tables: not measured, numpy is not installed here "
                      "(pip install numpy, then run pool-ext bench again)."]
    if result.get("shared"):
        lines += _shared(result["shared"])
    if result.get("threads"):
        lines += _threads(result)
    if result.get("memory"):
        if "error" in result["memory"]:
            why = "; ".join(result["memory"]["error"])
            lines += ["", f"Memory per slot: not measured ({why})"]
        else:
            lines += _memory(result["memory"])
    lines.append(f"\nTook {result['seconds']:.1f} s.")
    return "\n".join(lines)


def _wait(seconds):
    """A time in the unit that suits it: '740 ns', '6.21 ms', '4.00 s'."""
    unit, scale = _unit(seconds * 1e9)
    v = seconds * 1e9 / scale
    return f"{v:.{0 if v >= 100 else 1 if v >= 10 else 2}f} {unit}"


def _times(x):
    return "inf" if x == float("inf") else f"{x:,.2f}x" if x < 100 else f"{x:,.0f}x"


def _verdict(value, target):
    """'>= 0.98  PASS': the target and whether value meets it."""
    op, bound = target
    ok = value >= bound if op == ">=" else value <= bound
    return f"{op} {bound:g}".rjust(8) + ("  PASS" if ok else "  MISS")


def _fair_rows(res, targets):
    """The rows of the threads or tasks scenario: pool_ext, the Python pool,
    the target and PASS/MISS (pool_ext's figure against it), the label."""
    e, p = res["pool_ext"], res["python"]
    rows = [(f"{e['jain']:.3f}", f"{p['jain']:.3f}", "jain",
             "Jain's fairness index over the hand-outs per caller (1: all equal)"),
            (_times(e["max_min"]), _times(p["max_min"]), "max_min",
             "most hand-outs of one caller / fewest (inf: one got none)"),
            (_wait(e["p50_wait"]), _wait(p["p50_wait"]), None, "median wait for an object"),
            (_wait(e["p99_wait"]), _wait(p["p99_wait"]), None, "99th percentile wait"),
            (_wait(e["max_wait"]), _wait(p["max_wait"]), None, "longest wait")]
    if "ideal_wait" in res:
        rows.append((_times(e["worst_x_ideal"]), _times(p["worst_x_ideal"]), "worst_x_ideal",
                     f"longest wait / the FIFO ideal ({_wait(res['ideal_wait'])})"))
    rows.append((f"{e['throughput']:,.0f}/s", f"{p['throughput']:,.0f}/s", None,
                 "hand-outs per second"))
    if "throughput_ratio" in res:
        rows.append((_times(res["throughput_ratio"]), "", "throughput_ratio",
                     "throughput, pool_ext / the Python pool"))
    lines = [f"{'pool_ext':>12s}{'Python pool':>12s}{'target':>16s}"]
    for ours, theirs, key, label in rows:
        if key is None:
            verdict = ""
        else:
            value = res["throughput_ratio"] if key == "throughput_ratio" else e[key]
            verdict = _verdict(value, targets[key])
        lines.append(f"{ours:>12s}{theirs:>12s}{verdict:>16s}  {label}")
    return lines


def _handoff_rows(res, target):
    """Per loop: time per hand-out of each pool and without one, the ratio
    against its target; then how often the object changed hands."""
    lines = [f"{'pool_ext':>12s}{'Python pool':>12s}{'no pool':>12s}"
             f"{'Python / pool_ext':>20s}{'target':>16s}"]
    for loop, v in res.items():
        lines.append(f"{_wait(v['pool_ext'] / 1e9):>12s}{_wait(v['python'] / 1e9):>12s}"
                     f"{_wait(v['no_pool'] / 1e9):>12s}{_times(v['ratio']):>20s}"
                     f"{_verdict(v['ratio'], target):>16s}  {loop}")
    for loop, v in res.items():
        lines.append(f"{v['pool_ext_changes']:>12.2f}{v['python_changes']:>12.2f}"
                     f"{'':>48s}  {loop}: changes of hands per hand-out (1: each release "
                     "went to the other task)")
    return lines


def format_contention(result):
    """The table of ``pool-ext bench --contention`` (pool_ext.bench.contention)."""
    m, s, t = result["machine"], result["settings"], result["targets"]
    th, ta = result["threads"], result["tasks"]
    la, end = m.get("loadavg"), m.get("loadavg_end")
    load = "n/a" if la is None else f"{la[0]:.2f}"
    if la is not None and end is not None:
        load += f" at the start, {end[0]:.2f} at the end"
    lines = [f"pool_ext {m['pool_ext']}, {m['implementation']} {m['python']}, "
             f"{m['cpus']} CPUs, load average {load}",
             f"Medians of {s['rounds']} interleaved rounds of {s['duration']:g} s: a pool_ext "
             "round, then one of a fair pool written in Python (it hands each release to "
             "the oldest waiter).  PASS/MISS: pool_ext's figure against the target."]
    busy = overloaded(la, m["cpus"]) or overloaded(end, m["cpus"])
    if busy:
        lines.insert(0, f"WARNING: {busy}.")
    lines += ["", f"Threads: {th['threads']} threads share a pool of {th['capacity']}; each "
                  f"holds its object {th['hold'] * 1e3:g} ms (time.sleep) and comes straight "
                  "back."]
    lines += _fair_rows(th, t["threads"])
    lines += ["", f"Tasks: {ta['tasks']} asyncio tasks share a pool of {ta['capacity']}; each "
                  "holds its object one loop iteration (await asyncio.sleep(0)) and comes "
                  "straight back."]
    lines += _fair_rows(ta, t["tasks"])
    lines += ["", f"Contended async hand-off: 2 tasks share a pool of 1 the same way, "
                  f"{s['handoffs']:,d} hand-outs per round; time per hand-out (no pool: the "
                  "same two loops without a pool)."]
    lines += _handoff_rows(result["handoff"], t["handoff"]["ratio"])
    lines.append(f"\nTook {result['seconds']:.1f} s.")
    return "\n".join(lines)
