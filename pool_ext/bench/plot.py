"""``pool-ext bench --plot``: three panels, each with a caption under it.

Left, time per acquire + release against the number of slots (ObjectPool
against the article's linear-scan pool); middle, time for the scratch-buffer
path against buffer size; right, ArrayPool's temporary arrays against
numpy.empty's by size.  Every series has its own colour and marker; the
shading is the middle half of the rounds.  Needs matplotlib.
"""
import textwrap

from pool_ext.bench import cases as C

MARKERS = "osD^vP*Xph<>"

SCALING_CAPTION = (
    "Time for one acquire + release against the pool's number of slots, with 0%, 50% "
    "or 99% of them in use.  ObjectPool takes a free slot from a free list, so its time "
    f"stays flat (O(1)); {C.LINEAR_SCAN} checks its slots one by one, so its time "
    "grows with the slots in use (O(n)).  The flat line is an empty method call, "
    "the fastest any extension can be.  Shaded: the middle half of the rounds.")
SIZES_CAPTION = (
    "Time to get a scratch buffer, view it (memoryview or numpy.frombuffer) and give it "
    "back, against the buffer's size: from a BufferPool, or newly allocated (bytearray, "
    "numpy.empty, numpy.zeros).  Dashed: also writing one byte per 4 KiB page, which "
    "new memory pays a page fault for.  Shaded: the middle half of the rounds.")


ARRAYS_CAPTION = (
    "Time to make a temporary array of n bytes and drop it, against n: from an ArrayPool "
    "(a cached block) or new (numpy.empty, numpy.zeros).  Dashed: also writing one byte "
    "per 4 KiB page, as a real temporary does; new memory pays a page fault per page, and "
    "numpy maps memory of 32 MiB and more from the OS anew each time.  Shaded: the middle "
    "half of the rounds.")


def _series(ax, x_key, series, label, style=lambda s: "-"):
    """One line per series, its own colour and marker, IQR shaded."""
    for i, s in enumerate(series):
        pts = s["points"]
        if not pts:
            continue
        xs = [p[x_key] for p in pts]
        colour = f"C{i % 10}"
        ax.plot(xs, [p["ns"] for p in pts], style(s), color=colour,
                marker=MARKERS[i % len(MARKERS)], ms=4, label=label(s))
        ax.fill_between(xs, [p["ns_iqr"][0] for p in pts], [p["ns_iqr"][1] for p in pts],
                        color=colour, alpha=0.15, lw=0)
    return len(series)


def _caption(ax, text):
    ax.text(0.0, -0.16, textwrap.fill(text, 78), transform=ax.transAxes,
            ha="left", va="top", fontsize=8)


def plot(result, path):
    """Writes the figure for `result` (as run() returns it) to `path`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays = result.get("arrays")
    if arrays:
        fig, (left, right, third) = plt.subplots(1, 3, figsize=(19, 5.2))
    else:
        fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    n = _series(left, "capacity", result["scaling"],
                lambda s: f"{s['pool']}, {s['in_use']:.0%} in use")
    empty = result["cases"][C.EMPTY_CALL]
    caps = sorted({p["capacity"] for s in result["scaling"] for p in s["points"]})
    left.plot(caps, [empty["ns"]] * len(caps), ":", color=f"C{n % 10}",
              marker=MARKERS[n % len(MARKERS)], ms=4,
              label=f"empty method call, {empty['ns']:.0f} ns")
    left.set(xscale="log", yscale="log", xlabel="slots in the pool",
             ylabel="ns per acquire + release", title="O(1) or O(n): time against pool size")
    left.legend(fontsize=7)
    _caption(left, SCALING_CAPTION)

    _series(right, "buffer_size", result["sizes"], lambda s: s["label"],
            style=lambda s: "--" if s["key"].endswith("_touch") else "-")
    right.set(xscale="log", yscale="log", xlabel="buffer size (bytes)",
              ylabel="ns per get + view + give back",
              title="Scratch memory: pooled or new")
    right.legend(fontsize=7)
    _caption(right, SIZES_CAPTION)

    if arrays:
        _series(third, "nbytes", arrays, lambda s: s["label"],
                style=lambda s: "--" if "touch" in s["key"] else "-")
        third.set(xscale="log", yscale="log", xlabel="array size (bytes)",
                  ylabel="ns per make + drop", title="Temporary arrays: ArrayPool or numpy")
        third.legend(fontsize=7)
        _caption(third, ARRAYS_CAPTION)

    m = result["machine"]
    fig.suptitle(f"pool_ext {m['pool_ext']}, {m['implementation']} {m['python']}, "
                 f"{m['cpus']} CPUs; C core: {m['atomics']}", fontsize=9)
    # bbox "tight" grows the image to take in the captions below the axes
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
