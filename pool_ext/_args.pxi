# Exceptions, and the checks every argument goes through (included by _pool.pyx).

class PoolError(ValueError):
    """Misuse of a pool: releasing what it did not hand out, or twice."""


class PoolClosed(PoolError):
    """The pool is closed: it hands out nothing more."""


class PoolExhausted(TimeoutError):
    """acquire() found no free slot before its timeout ran out (or drain()
    found objects still held when its timeout ran out)."""


class PoolLeakWarning(ResourceWarning):
    """A hand-out held longer than the pool's leak_timeout (tracking on).

    Emitted once per hand-out, with the stack that acquired it.  Unlike
    other ResourceWarnings it is shown by default: importing pool_ext adds
    a "default" filter for it, unless the warning filters in force already
    decide what happens to it (``-W``, PYTHONWARNINGS, ``-X dev``).
    """


for _cls in (PoolError, PoolClosed, PoolExhausted, PoolLeakWarning):
    _cls.__module__ = "pool_ext"
del _cls


cdef inline bint _is_bool(object value):
    """bool, or a bool-like scalar such as numpy.bool_ (not a bool subclass,
    but a number to PyFloat_AsDouble): a flag passed where a number belongs."""
    return isinstance(value, bool) or (type(value).__name__ in ("bool_", "bool")
                                       and type(value).__module__ == "numpy")


cdef double _parse_seconds(object value, str name) except -2.0:
    """A duration: None -> -1.0 (no limit); else seconds >= 0, and inf -> -1.0."""
    cdef double t
    if value is None:
        return -1.0
    if _is_bool(value):
        raise TypeError(f"{name} must be a number or None, not {type(value).__name__}")
    try:
        t = PyFloat_AsDouble(value)   # TypeError for non-numbers
    except TypeError:
        raise TypeError(f"{name} must be a number or None, not "
                        f"{type(value).__name__}") from None
    if isnan(t):
        raise ValueError(f"{name} must not be NaN")
    if t < 0:
        raise ValueError(f"{name} must be non-negative or None")
    if isinf(t):
        return -1.0
    return t


cdef inline double _parse_timeout(object timeout) except -2.0:
    """None -> -1.0 (wait forever); else seconds >= 0.  inf waits forever."""
    return _parse_seconds(timeout, "timeout")


cdef uint64_t _parse_limit(object value, str name) except? 0:
    """max_lifetime, max_idle, leak_timeout: seconds -> ns; None or inf ->
    POOL_CLOCK_NEVER (no limit)."""
    cdef double t = _parse_seconds(value, name)
    return POOL_CLOCK_NEVER if t < 0 else pool_clock_from_seconds(t)


#: start_evictor()'s shortest interval: shorter, its thread would be a busy
#: loop (a round costs microseconds); the longest is what Event.wait takes.
cdef double _MIN_INTERVAL = 0.001


cdef double _parse_interval(object interval) except -1.0:
    """start_evictor(interval): seconds, finite, from _MIN_INTERVAL to
    threading.TIMEOUT_MAX (None is no interval: refused)."""
    cdef double t
    if interval is None or _is_bool(interval):
        raise TypeError(f"interval must be a number of seconds, not {type(interval).__name__}")
    try:
        t = PyFloat_AsDouble(interval)   # TypeError for non-numbers
    except TypeError:
        raise TypeError(f"interval must be a number of seconds, not "
                        f"{type(interval).__name__}") from None
    except OverflowError:                # an int too big for a float
        t = <double>_threading.TIMEOUT_MAX * 2
    if not (_MIN_INTERVAL <= t <= <double>_threading.TIMEOUT_MAX):   # (NaN too)
        raise ValueError(f"interval must be a finite number of seconds from "
                         f"{_MIN_INTERVAL:g} (1 ms) to {_threading.TIMEOUT_MAX:g}, "
                         f"got {interval!r}")
    return t


cdef str _parse_name(object name):
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, not {type(name).__name__}")
    return None if name is None else str.__str__(name)   # a plain str, whatever the subclass


cdef extern from "Python.h":
    # (on borrowed pointers: no reference counting on the hot path)
    bint _float_exact "PyFloat_CheckExact" (PyObject *o) noexcept
    double _float_value "PyFloat_AS_DOUBLE" (PyObject *o) noexcept
    bint _int_exact "PyLong_CheckExact" (PyObject *o) noexcept


cdef extern from "pool_args.h":
    bint pool_int_small_nonneg(PyObject *o) noexcept


cdef inline bint _timeout_fast_p(PyObject *timeout) noexcept:
    """True if timeout is certainly a valid timeout, told in a few
    instructions: None, an exact float >= 0 (inf too), or an exact int >= 0.
    False does not mean invalid: _parse_timeout then decides (and raises).
    Exact types only, so no __float__ or __index__ of a subclass runs here:
    bool, numpy.bool_ and str go the full way, and raise there."""
    if timeout == <PyObject *>None:
        return True
    if _float_exact(timeout):
        return _float_value(timeout) >= 0.0      # (False for NaN)
    if _int_exact(timeout):   # (a huge int must raise OverflowError: the full way)
        return pool_int_small_nonneg(timeout)
    return False


cdef inline bint _timeout_fast(object timeout) noexcept:
    return _timeout_fast_p(<PyObject *>timeout)


cdef inline int _check_timeout(object timeout) except -1:
    """acquire() validates its timeout even when it need not wait: cheaply
    when it can (_timeout_fast), else in full."""
    if not _timeout_fast(timeout):
        _parse_timeout(timeout)
    return 0


cdef object _int_arg(object value, str name, object low, object high):
    """An integer argument as a plain int in [low, high], converted once.

    operator.index accepts what Python accepts as an index (int, numpy
    integers, any __index__), never a float or a bool.  An int subclass
    is reduced to its plain value, so none of its methods (comparisons,
    __index__, __int__) runs after this: a lying subclass cannot make the
    checks below and the value used disagree."""
    if _is_bool(value):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    try:
        value = _operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}") from None
    if type(value) is not int:
        value = int.__index__(value)   # the plain int inside the subclass
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


cdef uint32_t _parse_capacity(object capacity) except 0:
    return <uint32_t>_int_arg(capacity, "capacity", 1, POOL_MAX_CAPACITY)


cdef object _capacity_error(str pool, uint32_t n, double nbytes):
    """The MemoryError of a pool whose capacity's memory cannot be had: what
    it asked for, per slot, and that MAX_CAPACITY is not the limit that hit."""
    size = f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.0f} MiB"
    return MemoryError(
        f"cannot allocate {pool}(capacity={n}): it needs {size} up front "
        f"({nbytes / n:.0f} bytes per slot); MAX_CAPACITY ({POOL_MAX_CAPACITY}) only "
        f"bounds the slot indices, memory bounds the capacity (docs/guide.md)")


cdef object _check_hook(object hook, str name):
    if hook is not None and not callable(hook):
        raise TypeError(f"{name} must be callable or None, not {type(hook).__name__}")
    return hook
