# numpy arrays over pooled memory, for ArrayPool and BufferPool (included by
# _pool.pyx).  numpy's C API (includes/pool_numpy.h) is imported on the first
# array call, never at `import pool_ext`.
#
# An array is made in two steps so that nothing is taken from a pool before
# the request is known to be valid: _array_request parses shape, dtype and
# order (and computes nbytes with overflow checks) without touching a pool;
# the caller takes memory of that size, then _array_make builds the
# numpy.ndarray over it with PyArray_NewFromDescr and makes the caller's
# base object (a _Block, or a _BufferArrayBase) the array's base.  The base
# is a private object that exposes no memory and whose __dealloc__ gives the
# memory back: the array and every view of it keep it alive (numpy's views
# reference their base array), so the memory returns when the last of them
# dies, and nothing can keep the memory without keeping it out of the pool.

cdef extern from "Python.h":
    Py_ssize_t _PyLong_AsSsize_t "PyLong_AsSsize_t" (object o) noexcept
    PyObject *PyErr_Occurred() noexcept
    void PyErr_Clear() noexcept
    Py_ssize_t PY_SSIZE_T_MAX
    PyObject *PyImport_GetModule(object name) noexcept   # new reference, or NULL

cdef enum:
    _MAX_NDIM = 64      # numpy 2's NPY_MAXDIMS; numpy 1.x refuses above 32 itself

cdef struct _ArrayShape:
    int nd
    bint fortran
    bint needs_init     # the dtype must start zeroed (numpy's NPY_NEEDS_INIT: 'U')
    size_t nbytes
    npy_intp dims[_MAX_NDIM]

cdef str _NO_NUMPY = "ArrayPool and BufferPool arrays need numpy: pip install numpy"
cdef uint64_t _REFUSED_FLAGS = NPY_ITEM_REFCOUNT | NPY_ITEM_IS_POINTER


cdef int _numpy_import() except -1:
    """The slow path of _numpy_ready: the first array call imports numpy."""
    try:
        pool_numpy_ready()
    except ImportError as exc:
        if not POOL_NUMPY_HEADERS:
            raise                  # no numpy at build time: installing it will not help
        raise ImportError(_NO_NUMPY) from exc
    return 0


cdef inline int _numpy_ready() except -1:
    if pool_numpy_ready_fast():
        return 0
    return _numpy_import()


cdef bint _is_ndarray(object o) except -1:
    """o is a numpy array, asked before this process made one: numpy's C
    API is loaded first if numpy is imported (else no array can exist)."""
    cdef PyObject *np
    if not pool_numpy_ready_fast():
        np = PyImport_GetModule("numpy")
        if np == NULL:
            PyErr_Clear()   # (an error looking it up: then surely no array)
            return False
        Py_DECREF(<object>np)
        _numpy_ready()
    return pool_ndarray_check(o)


cdef npy_intp _dim(object d) except -1:
    """One dimension: a non-negative int (never a bool or a float)."""
    cdef npy_intp v
    if type(d) is int:
        v = _PyLong_AsSsize_t(d)
        if v >= 0:
            return v
        if v == -1 and PyErr_Occurred() != NULL:   # OverflowError: too big
            PyErr_Clear()
            raise ValueError(f"array dimensions must be at most {PY_SSIZE_T_MAX}, got {d}")
        raise ValueError(f"negative dimensions are not allowed, got {d}")
    try:
        return _int_arg(d, "shape", 0, PY_SSIZE_T_MAX)
    except ValueError as exc:
        raise ValueError(f"array dimensions must be between 0 and {PY_SSIZE_T_MAX}, "
                         f"got {d!r}") from None


cdef int _parse_shape(object shape, _ArrayShape *req) except -1:
    """An int, or a sequence of ints (a tuple, a list, a numpy array ...)."""
    cdef Py_ssize_t i, n
    if type(shape) is int:
        req.nd = 1
        req.dims[0] = _dim(shape)
        return 0
    if not isinstance(shape, tuple):
        if isinstance(shape, (str, bytes, bytearray)) or _is_bool(shape):
            raise TypeError(f"shape must be an int or a sequence of ints, "
                            f"not {type(shape).__name__}")
        try:
            index = _operator.index(shape)   # numpy integers, __index__ objects
        except TypeError:
            if not hasattr(shape, "__iter__"):
                raise TypeError(f"shape must be an int or a sequence of ints, "
                                f"not {type(shape).__name__}") from None
            shape = tuple(shape)
        else:
            req.nd = 1
            req.dims[0] = _dim(index)
            return 0
    n = len(<tuple>shape)
    if n > _MAX_NDIM:
        raise ValueError(f"an array has at most {_MAX_NDIM} dimensions, got {n}")
    for i in range(n):
        req.dims[i] = _dim((<tuple>shape)[i])
    req.nd = <int>n
    return 0


cdef object _parse_dtype(object dtype, size_t *itemsize):
    """numpy.dtype(dtype), refused if pooled memory could not hold it."""
    cdef PyArray_Descr *d = NULL
    cdef object descr
    cdef npy_intp size
    PyArray_DescrConverter(dtype, &d)          # TypeError for a non-dtype
    descr = <object><PyObject *>d              # Cython's reference ...
    Py_DECREF(descr)                           # ... replaces the converter's
    size = pool_descr_elsize(d)
    if size <= 0:
        raise TypeError(f"dtype {descr!r} has no size; give one, e.g. 'S8' or 'U8'")
    if pool_descr_flags(d) & _REFUSED_FLAGS:
        raise TypeError(f"dtype {descr!r} holds references (Python objects or pointers); "
                        f"pooled memory must not hold references: use numpy.empty")
    itemsize[0] = <size_t>size
    return descr


cdef int _parse_order(object order, bint allow_keep) except -1:
    """0: C, 1: F, 2: keep the prototype's layout (the *_like functions)."""
    if order is None or order == "C":
        return 0
    if order == "F":
        return 1
    if allow_keep and (order == "K" or order == "A"):
        return 2
    if not isinstance(order, str):
        raise TypeError(f"order must be a str, not {type(order).__name__}")
    raise ValueError(f"order must be 'C' or 'F'{', K or A' if allow_keep else ''}, "
                     f"got {order!r}")


cdef object _array_request(object shape, object dtype, object order, _ArrayShape *req):
    """Parses an array request into req; returns its dtype.  Takes nothing."""
    cdef size_t itemsize, total
    cdef int i
    _numpy_ready()
    _parse_shape(shape, req)
    descr = _parse_dtype(dtype, &itemsize)
    # numpy zero-fills such dtypes in empty() too (the bytes must be valid)
    req.needs_init = (pool_descr_flags(<PyArray_Descr *><PyObject *>descr)
                      & NPY_NEEDS_INIT) != 0
    req.fortran = _parse_order(order, False) == 1
    total = itemsize
    for i in range(req.nd):
        if req.dims[i] != 0 and total > <size_t>PY_SSIZE_T_MAX // <size_t>req.dims[i]:
            raise ValueError(f"array is too big: shape {shape!r} of {descr!r} is more "
                             f"than {PY_SSIZE_T_MAX} bytes")
        total *= <size_t>req.dims[i]
    req.nbytes = total
    return descr


cdef object _array_make(_ArrayShape *req, object descr, void *data, object base):
    """The numpy.ndarray over data, with base as its base (both referenced)."""
    Py_INCREF(descr)    # pool_ndarray_new steals both, also when it fails
    Py_INCREF(base)
    return pool_ndarray_new(<PyArray_Descr *><PyObject *>descr, req.nd, req.dims, data,
                            req.fortran, <PyObject *>base)


cdef object _like_request(object a, object dtype, object order, _ArrayShape *req):
    """empty_like's request: a's shape, dtype (or dtype), layout (order K)."""
    cdef int i, o
    _numpy_ready()
    if not pool_ndarray_check(a):
        a = PyArray_FromAny(a, NULL, 0, 0, 0, NULL)
    o = _parse_order(order, True)
    if o == 2:
        o = 1 if pool_ndarray_is_fortran(a) else 0
    req.nd = pool_ndarray_ndim(a)
    if req.nd > _MAX_NDIM:
        raise ValueError(f"an array has at most {_MAX_NDIM} dimensions, got {req.nd}")
    shape = tuple([pool_ndarray_dims(a)[i] for i in range(req.nd)])
    if dtype is None:
        dtype = <object><PyObject *>pool_ndarray_descr(a)
    return _array_request(shape, dtype, "F" if o == 1 else "C", req)
