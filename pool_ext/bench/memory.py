"""Memory: the process's resident set size, and what a pool costs per slot.

>>> from pool_ext.bench.memory import rss_bytes
>>> rss_bytes() > 0
True
"""
import ctypes
import gc
import json
import os
import subprocess
import sys

from pool_ext import BufferPool, ObjectPool


def rss_bytes():
    """The process's current resident set size in bytes, or None where it
    cannot be read (platforms other than Linux, macOS and Windows)."""
    try:
        if sys.platform.startswith("linux"):
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        if sys.platform == "darwin":
            return _rss_macos()
        if sys.platform == "win32":
            return _rss_windows()
    except (OSError, ValueError, AttributeError):
        pass
    return None


class _TimeValue(ctypes.Structure):
    _fields_ = [("seconds", ctypes.c_int), ("microseconds", ctypes.c_int)]


class _MachTaskBasicInfo(ctypes.Structure):
    # <mach/task_info.h>, declared under #pragma pack(4).  The 'ms' layout
    # packs as that pragma does for these fields; naming it keeps 3.14's
    # DeprecationWarning for _pack_ without _layout_ away (older versions
    # ignore _layout_).
    _layout_ = "ms"
    _pack_ = 4
    _fields_ = [("virtual_size", ctypes.c_uint64), ("resident_size", ctypes.c_uint64),
                ("resident_size_max", ctypes.c_uint64), ("user_time", _TimeValue),
                ("system_time", _TimeValue), ("policy", ctypes.c_int),
                ("suspend_count", ctypes.c_int)]


def _rss_macos():
    libc = ctypes.CDLL("/usr/lib/libSystem.dylib")
    info = _MachTaskBasicInfo()
    count = ctypes.c_uint(ctypes.sizeof(info) // ctypes.sizeof(ctypes.c_uint))
    task = ctypes.c_uint.in_dll(libc, "mach_task_self_")   # what mach_task_self() expands to
    MACH_TASK_BASIC_INFO = 20
    if libc.task_info(task, MACH_TASK_BASIC_INFO, ctypes.byref(info), ctypes.byref(count)):
        return None
    return info.resident_size


class _ProcessMemoryCounters(ctypes.Structure):
    # PROCESS_MEMORY_COUNTERS, <psapi.h>
    _fields_ = [("cb", ctypes.c_ulong), ("PageFaultCount", ctypes.c_ulong)] + [
        (name, ctypes.c_size_t) for name in (
            "PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage",
            "QuotaPagedPoolUsage", "QuotaPeakNonPagedPoolUsage", "QuotaNonPagedPoolUsage",
            "PagefileUsage", "PeakPagefileUsage")]


def _rss_windows():
    kernel32 = ctypes.WinDLL("kernel32")
    kernel32.GetCurrentProcess.restype = ctypes.c_void_p
    get_info = kernel32.K32GetProcessMemoryInfo
    get_info.argtypes = [ctypes.c_void_p, ctypes.POINTER(_ProcessMemoryCounters),
                         ctypes.c_ulong]
    counters = _ProcessMemoryCounters(cb=ctypes.sizeof(_ProcessMemoryCounters))
    if not get_info(kernel32.GetCurrentProcess(), ctypes.byref(counters), counters.cb):
        return None
    return counters.WorkingSetSize


def _next_pow2(n):
    size = 4
    while size < n:
        size <<= 1
    return size


def memory_per_slot(capacity=1_000_000):
    """Bytes per slot, not counting the pooled objects or buffers.

    ObjectPool: its objects are made before the measurement, then the pool is
    built, filled and cycled (every slot held once, so every page of its C
    arrays is touched); the growth of RSS (all memory) and of tracemalloc's
    count (the Python heap: the slot list) is divided by capacity.  By layout:
    the C arrays (next[] 4 B + state 8 B + address map 16 B x
    next_pow2(2 x capacity) / capacity) plus the list's 8 B pointer.
    """
    import tracemalloc
    objs = [object() for _ in range(capacity)]
    it = iter(objs)
    held = [None] * capacity    # made first: not part of the measurement
    gc.collect()
    tracemalloc.start()
    r0, t0 = rss_bytes(), tracemalloc.get_traced_memory()[0]
    pool = ObjectPool(it.__next__, capacity, prefill=capacity)
    for k in range(capacity):
        held[k] = pool.acquire()
    for o in held:
        pool.release(o)
    r1, t1 = rss_bytes(), tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    out = {"capacity": capacity,
           "object_pool": {"by_layout": 4 + 8 + 16 * _next_pow2(2 * capacity) / capacity + 8,
                           "rss": None if r0 is None else (r1 - r0) / capacity,
                           "python_heap": (t1 - t0) / capacity}}
    del pool, held
    gc.collect()
    # BufferPool: the arena is calloc'ed and never written here, so its pages
    # are not resident; holding every slot touches every state word.  No
    # tracemalloc (its own bookkeeping per handle would show in RSS): the
    # handles' list is made first and their size, sys.getsizeof each, is
    # subtracted.
    held = [None] * capacity
    r0 = rss_bytes()
    bp = BufferPool(64, capacity)
    for k in range(capacity):
        held[k] = bp.acquire()
    r1 = rss_bytes()
    handle = sys.getsizeof(held[0])
    for b in held:
        b.release()
    out["buffer_pool"] = {"by_layout": 4 + 8 + (bp.stride - bp.buffer_size),
                          "stride": bp.stride, "buffer_size": bp.buffer_size,
                          "rss": None if r0 is None else (r1 - r0) / capacity - handle}
    return out


def memory_in_subprocess(capacity=1_000_000):
    """memory_per_slot() in a fresh interpreter: in this one, memory freed by
    the earlier cases is reused without growing RSS, which hides the pools'."""
    code = ("import json, sys; from pool_ext.bench.memory import memory_per_slot; "
            f"json.dump(memory_per_slot({capacity}), sys.stdout)")
    # `python -c` puts its working directory first on sys.path: run it where
    # this pool_ext is, so a source checkout in ours cannot shadow it.
    where = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=where)
    if proc.returncode != 0:
        return {"capacity": capacity, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout)
