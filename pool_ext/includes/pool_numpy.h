/*
 * pool_numpy.h - numpy's C API for pool_ext._pool, imported lazily.
 *
 * numpy is needed to build pool_ext (its headers), not to run it: `import
 * pool_ext` never imports numpy.  This header is included by the one
 * translation unit _pool.c, whose PyArray_API table (numpy's function
 * pointers, a static here) stays NULL until the first ArrayPool or
 * BufferPool array call runs PyArray_ImportNumPyAPI() (pool_numpy_ready).
 * Cython would call import_array at module init for a `cimport numpy`; the
 * declarations in pool_numpy.pxd are ours, so it does not.
 *
 * ABI: built against numpy 2.x headers with NPY_TARGET_VERSION 1.25, the
 * oldest numpy the wheel supports; numpy's npy_2_compat.h then reads a
 * descriptor's size and flags the way the numpy found at run time lays them
 * out (1.x or 2.x).
 *
 * Free-threaded builds: two threads may run the first import at once; both
 * store the same table pointer (numpy's own import_array has the same
 * benign race).
 */
#ifndef POOL_NUMPY_H
#define POOL_NUMPY_H

#include <Python.h>

#if defined(POOL_NO_NUMPY)
/* Built without numpy's headers (CMake found none: numpy has no wheels for
 * CPython 3.9 and 3.10 on Windows ARM64).  Everything else works; every
 * array call raises ImportError.  These stand-ins are never reached past
 * pool_numpy_ready(). */
#define POOL_NUMPY_HEADERS 0
typedef Py_ssize_t npy_intp;
typedef unsigned long long npy_uint64;
typedef struct { PyObject_HEAD } PyArray_Descr;
enum { NPY_ITEM_REFCOUNT = 0x01, NPY_ITEM_IS_POINTER = 0x04, NPY_NEEDS_INIT = 0x08,
       NPY_ARRAY_C_CONTIGUOUS = 0x01, NPY_ARRAY_F_CONTIGUOUS = 0x02, NPY_ARRAY_WRITEABLE = 0x400 };
static inline int pool_numpy_ready_fast(void) { return 0; }
static inline int pool_numpy_ready(void)
{
    PyErr_SetString(PyExc_ImportError, "this pool_ext was built without numpy's headers, so it "
                    "makes no arrays: build it from source with numpy installed");
    return -1;
}
static inline npy_intp pool_descr_elsize(PyArray_Descr *d) { (void)d; return 0; }
static inline npy_uint64 pool_descr_flags(PyArray_Descr *d) { (void)d; return 0; }
static inline int pool_ndarray_check(PyObject *o) { (void)o; return 0; }
static inline int pool_ndarray_is_fortran(PyObject *a) { (void)a; return 0; }
static inline void *pool_ndarray_data(PyObject *a) { (void)a; return NULL; }
static inline int pool_ndarray_layout(PyObject *a) { (void)a; return 0; }
static inline void pool_ndarray_set_readonly(PyObject *a) { (void)a; }
static inline void pool_ndarray_forget(PyObject *a) { (void)a; }
static inline int pool_borrow_unreachable(PyObject *a, Py_ssize_t refs) { (void)a; (void)refs; return 0; }
static inline PyObject *pool_ndarray_new(PyArray_Descr *descr, int nd, const npy_intp *dims,
                                         void *data, int fortran, PyObject *base)
{
    (void)nd; (void)dims; (void)data; (void)fortran;
    Py_DECREF((PyObject *)descr);
    Py_DECREF(base);
    return NULL;
}
static inline PyObject *pool_ndarray_new_as(PyTypeObject *type, PyArray_Descr *descr, int nd,
                                            const npy_intp *dims, void *data, int fortran,
                                            PyObject *base)
{
    (void)type;
    return pool_ndarray_new(descr, nd, dims, data, fortran, base);
}
static inline PyObject *pool_ndarray_base(PyObject *a) { (void)a; return NULL; }
static inline PyArray_Descr *pool_ndarray_descr(PyObject *a) { (void)a; return NULL; }
static inline int pool_ndarray_ndim(PyObject *a) { (void)a; return 0; }
static inline npy_intp *pool_ndarray_dims(PyObject *a) { (void)a; return NULL; }
static inline int PyArray_DescrConverter(PyObject *o, PyArray_Descr **d) { (void)o; *d = NULL; return 0; }
static inline PyObject *PyArray_FromAny(PyObject *op, PyArray_Descr *t, int a, int b, int c,
                                        PyObject *ctx)
{
    (void)op; (void)t; (void)a; (void)b; (void)c; (void)ctx;
    return NULL;
}
#else
#define POOL_NUMPY_HEADERS 1
#define NPY_NO_DEPRECATED_API NPY_1_25_API_VERSION
#define NPY_TARGET_VERSION NPY_1_25_API_VERSION
#include <numpy/arrayobject.h>

/* The hot path's test: 1 if numpy's API is imported. */
static inline int pool_numpy_ready_fast(void) { return PyArray_API != NULL; }

/* 1 once numpy's API is imported; else -1 with ImportError set. */
static inline int pool_numpy_ready(void)
{
    return PyArray_API != NULL ? 1 : (PyArray_ImportNumPyAPI() < 0 ? -1 : 1);
}

static inline npy_intp pool_descr_elsize(PyArray_Descr *d) { return (npy_intp)PyDataType_ELSIZE(d); }
static inline npy_uint64 pool_descr_flags(PyArray_Descr *d) { return (npy_uint64)PyDataType_FLAGS(d); }

static inline int pool_ndarray_check(PyObject *o) { return PyArray_Check(o); }

/* A writable C- or F-ordered array of type `type` (numpy.ndarray or a
 * subclass) over data, which `base` owns; steals descr and base, also on
 * failure.  New reference, or NULL with an exception set. */
static inline PyObject *pool_ndarray_new_as(PyTypeObject *type, PyArray_Descr *descr, int nd,
                                            const npy_intp *dims, void *data, int fortran,
                                            PyObject *base)
{
    PyObject *a = PyArray_NewFromDescr(
        type, descr, nd, dims, NULL, data,
        NPY_ARRAY_WRITEABLE | (fortran ? NPY_ARRAY_F_CONTIGUOUS : NPY_ARRAY_C_CONTIGUOUS), NULL);
    if (a == NULL) {
        Py_DECREF(base);
        return NULL;
    }
    if (PyArray_SetBaseObject((PyArrayObject *)a, base) < 0) {   /* steals base */
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

/* The same, exactly a numpy.ndarray. */
static inline PyObject *pool_ndarray_new(PyArray_Descr *descr, int nd, const npy_intp *dims,
                                         void *data, int fortran, PyObject *base)
{
    return pool_ndarray_new_as(&PyArray_Type, descr, nd, dims, data, fortran, base);
}

static inline PyArray_Descr *pool_ndarray_descr(PyObject *a) { return PyArray_DESCR((PyArrayObject *)a); }
static inline PyObject *pool_ndarray_base(PyObject *a) { return PyArray_BASE((PyArrayObject *)a); }
static inline int pool_ndarray_ndim(PyObject *a) { return PyArray_NDIM((PyArrayObject *)a); }
static inline npy_intp *pool_ndarray_dims(PyObject *a) { return PyArray_DIMS((PyArrayObject *)a); }
/* An array's data pointer; its layout: 1 C-contiguous, 2 F-contiguous only,
 * 0 neither. */
static inline void *pool_ndarray_data(PyObject *a) { return PyArray_DATA((PyArrayObject *)a); }
static inline int pool_ndarray_layout(PyObject *a)
{
    if (PyArray_IS_C_CONTIGUOUS((PyArrayObject *)a))
        return 1;
    return PyArray_IS_F_CONTIGUOUS((PyArrayObject *)a) ? 2 : 0;
}

/* a.flags.writeable = False, as numpy's setter does it (clearing the flag
 * needs no check; views made before keep theirs) */
static inline void pool_ndarray_set_readonly(PyObject *a)
{
    PyArray_CLEARFLAGS((PyArrayObject *)a, NPY_ARRAY_WRITEABLE);
}

static inline int pool_ndarray_is_fortran(PyObject *a)
{
    /* order="K" of empty_like: F only for an F- and not C-contiguous array */
    return PyArray_IS_F_CONTIGUOUS((PyArrayObject *)a)
           && !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)a);
}

/* borrow()'s exit gives the block back at once only if it can prove that
 * nothing outside the `with` can reach the block's memory; otherwise the
 * block returns when its base dies (as for empty()).  The array handed out,
 * `a`, is a view of a private array `inner` whose base is the block: numpy
 * makes every view of `a` (slices, reshapes, an unpacked row, views of
 * views) a view of `inner`, since it collapses a base chain down to the
 * last array before a non-array base.  So:
 *   - Py_REFCNT(inner) == 1: `inner` is held by `a` alone, so no view of
 *     `a` is alive and nobody took `a.base`;
 *   - Py_REFCNT(a) <= refs: nothing holds `a` but the caller's own
 *     references (refs 1: the lease's; refs 2: also one the caller has
 *     shown to be a name in the frame running the `with`, since objects that
 *     hold `a` and keep a raw pointer into it, such as a flatiter, count
 *     the same: _arraypool.pxi's _named_in_caller);
 *   - a's _buffer_info is NULL: `a` was never exported through the buffer
 *     protocol (numpy records every export there, from 1.20 on; a
 *     memoryview, bytes(a), np.frombuffer(a), a file's write(a)), so no
 *     raw pointer into the block escaped, even one whose holder references
 *     `a` in place of the `as` name (`a = memoryview(a)`).
 * Free-threaded builds split a count in two (the owning thread's part and
 * a shared part that other threads change atomically); their sum is still
 * every reference, and each holder above would hold a counted one.  What
 * is not exact there is a read by a thread that does not own the object
 * (the owner's part is written without atomics): so the exit decides only
 * for arrays its own thread made, as borrow()'s `with` does, and otherwise
 * leaves the block to its base.  (Counts deferred by the interpreter are
 * those of functions, code, types and modules, never of arrays.)
 * Returns 1 when the block may go back now. */
static inline int pool_borrow_unreachable(PyObject *a, Py_ssize_t refs)
{
    PyArrayObject_fields *f = (PyArrayObject_fields *)a;
    PyObject *inner = f->base;
    if (inner == NULL || !PyArray_Check(inner))
        return 0;
    /* A 0-d array has no dimension to zero: emptied, it would still have
     * one element, in pool_ndarray_nothing_ (64 bytes, shared by all).
     * Its block goes back when its base dies instead. */
    if (f->nd == 0 || ((PyArrayObject_fields *)inner)->nd == 0)
        return 0;
#if defined(Py_GIL_DISABLED)
    if (!_Py_IsOwnedByCurrentThread(a) || !_Py_IsOwnedByCurrentThread(inner))
        return 0;
#endif
    return f->_buffer_info == NULL && Py_REFCNT(a) <= refs && Py_REFCNT(inner) == 1;
}

/* After pool_borrow_unreachable: the block goes back now, so the arrays
 * must stop pointing into it.  Every dimension (at least one: never a 0-d
 * array) becomes 0 (a.size == 0) and
 * the data pointer an empty static buffer: a later use of the name (or of
 * a.base) sees an empty array, never memory that another hand-out owns.
 * The fields are numpy's public PyArrayObject_fields, the same layout in
 * 1.x and 2.x. */
static char pool_ndarray_nothing_[64];
static inline void pool_ndarray_forget(PyObject *a)
{
    PyArrayObject_fields *f = (PyArrayObject_fields *)a;
    int i;
    for (i = 0; i < f->nd; i++)
        f->dimensions[i] = 0;
    f->data = pool_ndarray_nothing_;
}

#endif /* POOL_NO_NUMPY */
#endif /* POOL_NUMPY_H */
