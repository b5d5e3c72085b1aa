# Mirrors pool_ext/includes/pool_numpy.h: the part of numpy's C API that
# ArrayPool and BufferPool.empty use.  Not `cimport numpy`: that would make
# Cython call import_array when pool_ext._pool is imported.
from cpython.object cimport PyObject
from libc.stdint cimport uint64_t

cdef extern from "pool_numpy.h":
    ctypedef Py_ssize_t npy_intp
    ctypedef struct PyArray_Descr:
        pass
    enum:
        NPY_ITEM_REFCOUNT
        NPY_ITEM_IS_POINTER
        NPY_NEEDS_INIT
        NPY_ARRAY_WRITEABLE
        NPY_ARRAY_C_CONTIGUOUS
        NPY_ARRAY_F_CONTIGUOUS
    int pool_numpy_ready() except -1
    bint pool_numpy_ready_fast() noexcept
    bint POOL_NUMPY_HEADERS      # 0: built without numpy's headers (no arrays)
    npy_intp pool_descr_elsize(PyArray_Descr *d) noexcept
    uint64_t pool_descr_flags(PyArray_Descr *d) noexcept
    bint pool_ndarray_check(object o) noexcept
    bint pool_ndarray_is_fortran(object a) noexcept
    void *pool_ndarray_data(object a) noexcept
    int pool_ndarray_layout(object a) noexcept
    void pool_ndarray_set_readonly(object a) noexcept
    void pool_ndarray_forget(object a) noexcept
    bint pool_borrow_unreachable(object a, Py_ssize_t refs) noexcept
    # steals descr and base (also on failure)
    object pool_ndarray_new(PyArray_Descr *descr, int nd, const npy_intp *dims, void *data,
                            bint fortran, PyObject *base)
    # the same as an instance of type (numpy.ndarray or a subclass)
    object pool_ndarray_new_as(void *type, PyArray_Descr *descr, int nd, const npy_intp *dims,
                               void *data, bint fortran, PyObject *base)
    PyArray_Descr *pool_ndarray_descr(object a) noexcept
    PyObject *pool_ndarray_base(object a) noexcept
    int pool_ndarray_ndim(object a) noexcept
    npy_intp *pool_ndarray_dims(object a) noexcept
    # numpy's, through its API table (valid once pool_numpy_ready() returned)
    int PyArray_DescrConverter(object obj, PyArray_Descr **out) except 0
    object PyArray_FromAny(object op, PyArray_Descr *dtype, int min_depth, int max_depth,
                           int requirements, PyObject *context)
