/*
 * pool_mode.h - picks the C core's atomics variant for this extension build.
 * Included (via pool_atomic.pxd) before any core header.
 *
 * GIL builds: every call into the core holds the GIL, so plain operations
 * are enough and cost nothing (see src/pool_atomic.h).  Free-threaded builds
 * (Py_GIL_DISABLED) use real atomics.  POOL_FORCE_ATOMICS (a CMake option)
 * builds the atomic variant on a GIL build too, to measure or test it.
 */
#ifndef POOL_MODE_H
#define POOL_MODE_H
#include <Python.h>
#if !defined(Py_GIL_DISABLED) && !defined(POOL_FORCE_ATOMICS)
#define POOL_ATOMIC_PLAIN 1
#endif

/* Free-threaded, a release may look an object up in the address map while
 * another thread empties and refills its slot, so ObjectPool re-checks that
 * the slot holds the object.  Under the GIL nothing runs between the two. */
#if defined(POOL_ATOMIC_PLAIN)
#define POOL_RACY_LOOKUP 0
#else
#define POOL_RACY_LOOKUP 1
#endif

/* BufferPool reuses a released PooledBuffer handle when the pool holds the
 * only reference to it.  That test (a refcount of 1) is exact only while the
 * GIL serialises every thread, so only the plain-operations build does it. */
#if defined(POOL_ATOMIC_PLAIN)
#define POOL_CACHE_HANDLES 1
#else
#define POOL_CACHE_HANDLES 0
#endif
static inline Py_ssize_t pool_refcnt(PyObject *o) { return Py_REFCNT(o); }

/* Whether o has weak references, which its refcount does not count: a
 * handle with one is not kept for reuse (the weak reference would come back
 * to life as the next owner's handle). */
static inline int pool_weakly_referenced(PyObject *o)
{
    Py_ssize_t off = Py_TYPE(o)->tp_weaklistoffset;
    return off > 0 && *(PyObject **)((char *)o + off) != NULL;
}

/* Each thread keeps a released slot of its own in front of the shared
 * free-list (src/pool_cache.h), so that threads running at once do not all
 * write the list's head.  Under the GIL one thread runs at a time: no cache,
 * and the GIL build's code is what it was. */
#if defined(POOL_ATOMIC_PLAIN)
#define POOL_THREAD_CACHE 0
#else
#define POOL_THREAD_CACHE 1
#endif

/* Free-threaded CPython counts references in two parts (biased reference
 * counting): when a thread drops the last reference to an object another
 * thread made, the object is queued to that owner, which frees it the next
 * time it runs its eval loop's pending work.  An owner asleep in acquire()
 * would then never free it, and if that object is what holds the slot it
 * waits for (a BufferPool array, a dropped PooledBuffer), it would wait out
 * its timeout.  So a free-threaded waiter sleeps in slices of at most this
 * many microseconds and runs a Python no-op between them (_PoolBase._park). */
/* Threads really run at once (whatever the atomics variant). */
#if defined(Py_GIL_DISABLED)
#define POOL_FREE_THREADED 1
#else
#define POOL_FREE_THREADED 0
#endif

#if defined(Py_GIL_DISABLED)
#define POOL_PARK_SLICE_US 20000
#else
#define POOL_PARK_SLICE_US 0
#endif
#endif
