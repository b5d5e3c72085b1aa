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


def _duration(ns, iqr):
    """'24.0±0.1 ms': the unit follows the size."""
    for unit, scale in (("ns", 1), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)):
        if ns < scale * 1000 or unit == "s":
            break
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
