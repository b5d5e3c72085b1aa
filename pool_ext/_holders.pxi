# Who holds what (included by _pool.pyx): the hand-out records of a pool
# built with track=True (or leak_timeout=, or POOL_EXT_TRACK=1), and what
# reads them: holders(), PoolExhausted's message, leak warnings, the hold
# time in stats().
#
# Design.  A tracking pool has a _Holders: a table with one record (_Hold)
# per slot that is handed out, made at hand-out and dropped when the slot
# comes back.  A record is cheap to make and costly to read.  Making it
# runs no Python code (so a hand-out can be neither interrupted nor
# re-entered half-recorded): the thread's name (a dict look-up by thread id
# in threading's registry), a clock reading, and up to _STACK_LIMIT (code,
# instruction offset) pairs of the acquiring stack, read from the frames
# with C calls into the record's own arrays.  Line numbers, file names and
# source lines are computed only when a record is read.
# A record references no user object (a PooledBuffer or an array only
# weakly), so the table, which the garbage collector does not see, holds no
# cycle.
#
# Who touches a record: the slot's owner makes it (begin, at hand-out) and
# drops it (end, at release, before the object leaves the slot); any thread
# reads the table (holders(), leak checks).  The table's pointers change
# under a critical section on the _Holders (free-threaded builds; under the
# GIL it compiles to nothing), held for pointer swaps only.  So a reader
# that finds a record for slot i may take the slot's object: the owner
# drops the record before it lets go of the object.

cdef extern from "frameobject.h":
    # (declared here, not cimported: the one use is the stack below; all
    # exist since 3.9, and frameobject.h declares PyFrame_GetBack there)
    ctypedef struct PyFrameObject:
        pass
    ctypedef struct PyCodeObject:
        pass
    PyFrameObject *PyEval_GetFrame()                    # borrowed; NULL: no frame
    PyFrameObject *PyFrame_GetBack(PyFrameObject *f)    # new reference or NULL
    PyCodeObject *PyFrame_GetCode(PyFrameObject *f)     # new reference

cdef extern from "pool_frames.h":
    int pool_frame_lasti(PyFrameObject *f)
    int pool_code_line(PyObject *code, int lasti) except? -1

cdef extern from "pythread.h":
    unsigned long PyThread_get_thread_ident() nogil

import collections as _collections
import os as _os
import traceback as _traceback

#: The frames a record keeps: enough to see through a framework's layers
#: to the code that acquired (the issue asked for at most 16).
cdef int _STACK_LIMIT = 16

# threading's registry of live Thread objects, by thread id (a private name,
# stable since Python 2; without it, threads are named by id).
_active = getattr(_threading, "_active", None)
cdef dict _threads = _active if type(_active) is dict else {}
del _active


Holder = _collections.namedtuple("Holder", "obj thread_name held_seconds stack")
Holder.__module__ = "pool_ext"
Holder.__doc__ = """One hand-out of a tracking pool, as pool.holders() reports it.

obj           the object handed out (BufferPool: the PooledBuffer, or for
              empty() and zeros() the array, whose buffer is its own: no
              release() frees it while the array lives)
thread_name   the name of the thread that acquired it
held_seconds  how long it has been out
stack         a traceback.StackSummary of the acquiring call, oldest frame
              first: stack[-1] is the line that acquired it"""


cdef bint _track_from_environment():
    """POOL_EXT_TRACK=1 (any value but "", "0"): every pool tracks."""
    return _os.environ.get("POOL_EXT_TRACK", "") not in ("", "0")


cdef void _capture_stack(_Hold rec) noexcept:
    """The calling Python frames, innermost first, at most _STACK_LIMIT,
    into rec.codes and rec.lastis.  C calls only (see the design above)."""
    cdef PyFrameObject *f = PyEval_GetFrame()
    cdef PyFrameObject *back
    if f == NULL:
        return
    Py_INCREF(<object><PyObject *>f)   # our own reference while we walk
    while f != NULL and rec.nframes < _STACK_LIMIT:
        rec.codes[rec.nframes] = <PyObject *>PyFrame_GetCode(f)   # owned by rec
        rec.lastis[rec.nframes] = pool_frame_lasti(f)
        rec.nframes += 1
        back = PyFrame_GetBack(f)
        Py_DECREF(<object><PyObject *>f)
        f = back
    if f != NULL:
        Py_DECREF(<object><PyObject *>f)


cdef object _stack_summary(_Hold rec):
    """A record's frames as a traceback.StackSummary, oldest first."""
    cdef int k
    entries = []
    for k in range(rec.nframes - 1, -1, -1):
        code = <object>rec.codes[k]
        entries.append(_traceback.FrameSummary(
            code.co_filename, pool_code_line(rec.codes[k], rec.lastis[k]), code.co_name))
    return _traceback.StackSummary.from_list(entries)


cdef str _current_thread_name(unsigned long ident):
    """This thread's name, without running Python code (Thread.name is a
    property; its value is the plain attribute _name); None if threading
    did not make this thread."""
    thread = _threads.get(ident)
    if thread is None:
        return None
    name = getattr(thread, "_name", None)
    return name if type(name) is str else None


cdef str _thread_name(_Hold rec):
    if rec.thread_name is not None:
        return rec.thread_name
    return f"thread {rec.ident}"


cdef str _acquired_at(_Hold rec):
    """'File "app.py", line 42, in handle': where the hand-out was acquired."""
    if rec.nframes == 0:
        return "an unknown place (no Python frame)"
    code = <object>rec.codes[0]
    return (f'File "{code.co_filename}", line '
            f'{pool_code_line(rec.codes[0], rec.lastis[0])}, in {code.co_name}')


cdef double _held_seconds(_Hold rec, uint64_t now) noexcept:
    return (now - rec.since_ns) / 1e9 if now > rec.since_ns else 0.0


@cython.final
@cython.freelist(32)
@cython.no_gc   # a str, a weak reference and code objects: no cycle through it
cdef class _Hold:
    """One tracked hand-out (private: holders() reports it as a Holder)."""

    def __dealloc__(self):
        cdef int k
        for k in range(self.nframes):
            Py_XDECREF(self.codes[k])


@cython.final
cdef class _Holders:
    """The hand-out records of one tracking pool, one per slot."""

    def __cinit__(self, uint32_t capacity, uint64_t leak_ns):
        self._capacity = capacity
        self._leak_ns = leak_ns
        self._records = <PyObject **>calloc(capacity, sizeof(PyObject *))
        if self._records == NULL:
            raise MemoryError(f"cannot allocate tracking records for {capacity} slots")

    def __dealloc__(self):
        cdef uint32_t i
        if self._records != NULL:
            for i in range(self._capacity):
                Py_XDECREF(self._records[i])
            free(self._records)

    cdef void begin(self, uint32_t i, object handle) noexcept:
        """Slot i was just handed out (by this thread).  Never fails: a
        record that cannot be made (MemoryError) is left out."""
        cdef _Hold rec
        cdef PyObject *old
        try:
            rec = _Hold.__new__(_Hold)
            rec.ident = PyThread_get_thread_ident()
            rec.thread_name = _current_thread_name(rec.ident)
            _capture_stack(rec)
            if handle is not None:
                rec.handle = _weakref.ref(handle)
            rec.since_ns = pool_clock_ns()
        except BaseException:
            return
        Py_INCREF(rec)
        with cython.critical_section(self):
            old = self._records[i]
            self._records[i] = <PyObject *>rec
        Py_XDECREF(old)   # (none, unless an array replaces its handle's record)

    cdef _Hold end(self, uint32_t i):
        """Slot i's hand-out ended: its record (None if it had none)."""
        cdef PyObject *p
        with cython.critical_section(self):
            p = self._records[i]
            self._records[i] = NULL
        if p == NULL:
            return None
        rec = <_Hold>p     # a new reference...
        Py_DECREF(rec)     # ...for the table's, which we took over
        return rec

    cdef _Hold get(self, uint32_t i):
        with cython.critical_section(self):
            rec = <object>self._records[i] if self._records[i] != NULL else None
        return rec

    cdef list snapshot(self, _PoolBase pool):
        """[(slot, record, object)] of every tracked hand-out, oldest first.
        pool: the ObjectPool whose objects to take (under the lock: see the
        design above), or None."""
        cdef uint32_t i
        cdef PyObject *p
        cdef list out = []
        with cython.critical_section(self):
            for i in range(self._capacity):
                if self._records[i] != NULL:
                    p = NULL
                    if pool is not None:
                        p = _item(<ObjectPool>pool, i)
                    out.append((i, <object>self._records[i],
                                <object>p if p != NULL else None))
        out.sort(key=_by_age)
        return out


def _by_age(entry):
    return (<_Hold>entry[1]).since_ns


# -- what the pools call --------------------------------------------------------

cdef inline void _hold_begin(_PoolBase pool, uint32_t i, object handle) noexcept:
    """At hand-out of slot i, if the pool tracks (handle: a PooledBuffer, or
    the array that holds it: what holders() shows, weakly)."""
    if pool._holders is not None:
        pool._holders.begin(i, handle)


cdef inline void _hold_end(_PoolBase pool, uint32_t i) noexcept:
    """When slot i comes back, before its object leaves the slot: the record
    goes, and its hold time joins the statistics."""
    if pool._holders is not None:
        _hold_finish(pool, i)


cdef void _hold_finish(_PoolBase pool, uint32_t i) noexcept:
    cdef _Hold rec
    cdef uint64_t held
    try:
        rec = pool._holders.end(i)
    except BaseException:   # (nothing in end() raises; noexcept needs the net)
        return
    if rec is None:
        return
    held = pool_clock_ns() - rec.since_ns
    pool_stat_add(&pool._holds, 1)
    pool_stat_add(&pool._hold_ns, held)
    pool_stat_raise(&pool._hold_ns_max, held)


cdef str _holder_stack_text(_PoolBase pool, uint32_t i):
    """For a dropped lease or PooledBuffer's warning: '; acquired at:' and
    the stack, or '' if the pool does not track slot i."""
    if pool is None or pool._holders is None:
        return ""
    rec = pool._holders.get(i)
    if rec is None:
        return ""
    return ("; acquired at (most recent call last):\n"
            + "".join(_stack_summary(rec).format()).rstrip("\n"))


cdef list _holders_list(_PoolBase pool):
    cdef _Hold rec
    held = pool._holders.snapshot(pool if type(pool) is ObjectPool else None)
    cdef uint64_t now = pool_clock_ns()
    out = []
    for i, rec, obj in held:
        if rec.handle is not None:
            obj = rec.handle()     # None if the PooledBuffer is being dropped
        out.append(Holder(obj, _thread_name(rec), _held_seconds(rec, now),
                          _stack_summary(rec)))
    return out


cdef str _longest_holder(_PoolBase pool):
    """For PoolExhausted: '; held longest (12.3 s) by thread 'w-3', acquired
    at File ...', or '' if the pool does not track or nothing is held."""
    if pool._holders is None:
        return ""
    held = pool._holders.snapshot(None)
    if not held:
        return ""
    rec = <_Hold>held[0][1]
    return (f"; held longest ({_held_seconds(rec, pool_clock_ns()):.3g} s) by "
            f"thread {_thread_name(rec)!r}, acquired at {_acquired_at(rec)}")


cdef int _warn_leaks(_PoolBase pool) except -1:
    """PoolLeakWarning for each hand-out held past leak_timeout, once each."""
    cdef _Holders h = pool._holders
    cdef uint64_t now
    cdef _Hold rec
    cdef list due = []
    if h is None or h._leak_ns == POOL_CLOCK_NEVER:
        return 0
    held = h.snapshot(None)
    now = pool_clock_ns()   # after the snapshot: no record is younger than now
    for _, rec, _ in held:
        if now - rec.since_ns <= h._leak_ns:
            break   # oldest first: the rest are younger
        with cython.critical_section(h):   # one thread claims each warning
            claimed = not rec.warned
            rec.warned = True
        if claimed:
            due.append(rec)
    for k, rec in enumerate(due):
        pool_stat_add(&pool._leaks, 1)
        try:
            _warnings.warn(PoolLeakWarning(
                f"{pool._label()}: an object held for {_held_seconds(rec, now):.1f} s, "
                f"longer than leak_timeout={h._leak_ns / 1e9:g} s, by thread "
                f"{_thread_name(rec)!r}; acquired at (most recent call last):\n"
                + "".join(_stack_summary(rec).format()).rstrip("\n")),
                stacklevel=1)   # (a C method has no frame: 1 is its caller)
        except BaseException:
            # A filter made the warning an error: that one was delivered; the
            # rest were not, and are left for the next check.
            for rest in due[k + 1:]:
                (<_Hold>rest).warned = False
            raise
    return 0


cdef void _show_leak_warnings():
    """PoolLeakWarning is a ResourceWarning, which Python ignores by default;
    a leak warning the user asked for (leak_timeout=) should show.  So unless
    a filter in force already decides for it (-W, PYTHONWARNINGS, -X dev), the
    first filter that matches it being the interpreter's own
    ignore::ResourceWarning, put a "default" filter for it in front."""
    for f in _warnings.filters:
        if isinstance(f[2], type) and issubclass(PoolLeakWarning, f[2]):
            if f[0] == "ignore" and f[1] is None and f[2] is ResourceWarning and f[3] is None:
                _warnings.filterwarnings("default", category=PoolLeakWarning)
            return


_show_leak_warnings()
