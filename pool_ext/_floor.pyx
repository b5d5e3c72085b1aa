# cython: language_level=3, freethreading_compatible=True, binding=False
# cython: boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
"""pool_ext._floor: the empty-body floor for the benchmarks (private).

The same call shapes as the pools, with nothing in them, compiled with the
same directives as _pool.pyx: ``f.release(f.acquire())`` is the cheapest a
Cython acquire/release pair can be, and ``with f.lease() as o:`` the
cheapest ``with`` over a lease object.  ``python -m pool_ext bench`` and
benchmarks/ quote every pool as a ratio to these.
"""
cimport cython

# Cython 3 makes every def method METH_FASTCALL|METH_KEYWORDS unless told
# otherwise (always_allow_keywords defaults to True); the floor asks for the
# cheapest calling conventions CPython has: METH_NOARGS and METH_O.


@cython.final
@cython.freelist(16)
cdef class _FloorLease:
    """What Floor.lease() returns: empty __enter__ / __exit__."""
    cdef object _obj

    @cython.always_allow_keywords(False)
    def __enter__(self):
        return self._obj

    def __exit__(self, exc_type, exc, tb):
        return False


@cython.final
cdef class Floor:
    """Empty acquire() (METH_NOARGS) and release(obj) (METH_O), an empty
    lease(), and itself an empty context manager."""

    @cython.always_allow_keywords(False)
    def acquire(self):
        return self

    @cython.always_allow_keywords(False)
    def release(self, obj):
        pass

    # The same, in the convention Cython 3 gives a def method by default
    # (METH_FASTCALL|METH_KEYWORDS), which the pools' methods use today: the
    # benchmarks show what the convention alone costs.
    def acquire_fastcall(self):
        return self

    def release_fastcall(self, obj):
        pass

    @cython.always_allow_keywords(False)
    def lease(self):
        # Allocates a lease object (from a freelist), as ObjectPool.lease() does.
        cdef _FloorLease lease = _FloorLease.__new__(_FloorLease)
        lease._obj = self
        return lease

    @cython.always_allow_keywords(False)
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return False
