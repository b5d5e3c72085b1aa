# SharedBufferPool: blocks in one shared-memory segment, handed between
# processes without a copy (included by _pool.pyx).  The segment's layout and
# its slot words are in src/pool_shm.h; this file is the process's side:
#
#   _Segment          one mapping of a segment (its fd, its layout copied
#                     out of the header once): unmapped when the last pool
#                     object and handle of this process that use it are gone
#   SharedBufferPool  acquire/release/lease/try_acquire, arrays, reclaim(),
#                     stats(), the name (attach), pickling (attaches)
#   SharedBuffer      the handle: the buffer protocol over one block; pickling
#                     it sends the block (its slot goes IN TRANSIT, and the
#                     one unpickling that presents the ticket holds it)
#   _SharedArrayBase  the private base of an array made by empty()/zeros()
#
# Who holds a slot is written in its word as (pid, tag): tag is the low 32
# bits of the process's start time, so a dead holder's pid reused by a new
# process is still told apart.  The identity is computed once per process
# (and again in a fork child).  Within a process, a handle's own state word
# (released / sent / exports) decides which thread's release counts, so a
# slot word only ever changes by one CAS in one place per transition.

from pool_ext.includes.pool_shm cimport *

import errno as _errno
import hashlib as _hashlib
import mmap as _mmap
import sys as _sys

cdef class SharedBuffer
cdef class _SharedLease


cdef bint _others_wait(pool_shm_layout_t *l) noexcept:
    """A waiter's claim is live: newcomers let it go first.  A claim that
    has passed, or reaches further than any waiter writes (scribbled), is
    cleared and ignored."""
    cdef uint64_t until = pool_shm_hungry_until(l), now
    if until == 0:
        return False
    now = pool_clock_ns()
    if now < until <= now + _SHM_HUNGRY_NS:
        return True
    pool_shm_clear_hungry(l, until)
    return False

cdef uint64_t _shm_me = 0          # this process's HELD word; 0: not known yet
cdef uint32_t _SHM_SLICE_MS = 100  # longest single sleep of a waiter (pool_shm.h)
cdef uint64_t _SHM_HUNGRY_NS = 200000000   # how long a waiter's claim lasts unrenewed
cdef object _shm_lock = _threading.Lock()
cdef object _shm_pools = _weakref.WeakValueDictionary()   # segment id -> pool
cdef object _shm_named = _weakref.WeakSet()               # pools owning a name here
cdef object _SharedArray = None                           # made on first array call
cdef object _NAME_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
cdef str _SHM_DEAD = "operation on a released SharedBuffer (or one sent to another process)"


def _proc_start(pid):
    """The start time of process pid (clock ticks since boot), or None if no
    such process is running: gone, or a zombie (it can release nothing)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X"):
        return None
    return int(rest[19])     # field 22; rest[0] is field 3


cdef inline uint64_t _shm_identity() except 0:
    """This process's HELD word: (pid, tag)."""
    cdef uint64_t me = pool_load64(&_shm_me, POOL_RELAXED)
    if me != 0:
        return me
    return _shm_identity_slow()


cdef uint64_t _shm_identity_slow() except 0:
    global _shm_me
    cdef uint64_t me
    pid = _os.getpid()
    start = _proc_start(pid)
    if start is None:
        raise OSError("SharedBufferPool cannot read this process's start time from /proc")
    me = pool_shm_held_word(<uint32_t>pid, <uint32_t>(start & 0xFFFFFFFF))
    # relaxed: every thread computes the same value
    pool_store64(&_shm_me, me, POOL_RELAXED)
    return me


def _shm_after_fork_in_child():
    """A fork child is another holder, and does not own its parent's names."""
    global _shm_me
    _shm_me = 0
    for pool in list(_shm_named):
        (<SharedBufferPool>pool)._drop_name()


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_shm_after_fork_in_child)


cdef object _os_error(int rc, str what):
    """An OSError (the right subclass, by errno) for a -errno rc."""
    return OSError(-rc, f"{what}: {_os.strerror(-rc)}")


cdef str _check_name(object name):
    if not isinstance(name, str):
        raise TypeError(f"name must be a str or None, not {type(name).__name__}")
    if not 1 <= len(<str>name) <= 200 or not _NAME_CHARS.issuperset(<str>name):
        raise ValueError(f"name must be 1 to 200 characters of A-Z, a-z, 0-9, '.', '_' "
                         f"and '-', got {name!r}")
    return <str>name


@cython.final
@cython.no_gc
cdef class _Segment:
    """One mapping of a segment in this process.  Pools and handles reference
    it; the mapping goes when the last of them does (never under a view)."""
    cdef pool_shm_layout_t l
    cdef uint64_t mapped       # bytes mapped (the file's size)
    cdef int fd
    cdef bytes id

    def __cinit__(self):
        self.fd = -1
        self.l.base = NULL

    def __dealloc__(self):
        if self.l.base != NULL:
            pool_shm_os_unmap(self.l.base, self.mapped)
        if self.fd >= 0:
            pool_shm_os_close(self.fd)


def _memory_room():
    """Bytes of memory a new segment can still get, as far as the kernel
    says: MemAvailable + SwapFree, and the cgroup's limit less its usage
    (v2 or v1) if there is one; None if unknown.  A segment's pages are
    allocated at creation (fallocate), and a shared-memory file has no size
    limit of its own: asked for more than the machine has, the kernel would
    give page after page until the OOM killer ends the process, so a request
    above this is refused before any page is touched."""
    room = None
    try:
        info = {}
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
        room = info["MemAvailable"] + info.get("SwapFree", 0)
    except (OSError, KeyError, ValueError, IndexError):
        pass
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return room
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":                       # cgroup v2
            root, limit_file, used_file = "/sys/fs/cgroup", "memory.max", "memory.current"
        elif "memory" in controllers.split(","):    # cgroup v1
            root, limit_file, used_file = ("/sys/fs/cgroup/memory", "memory.limit_in_bytes",
                                           "memory.usage_in_bytes")
        else:
            continue
        # the group's own directory, or the mount's root when a cgroup
        # namespace shows the group there
        for d in (root + path.rstrip("/"), root):
            try:
                with open(f"{d}/{limit_file}") as f:
                    limit = f.read().strip()
                with open(f"{d}/{used_file}") as f:
                    used = int(f.read().strip())
            except (OSError, ValueError):
                continue
            if limit != "max" and int(limit) < (1 << 60):
                left = max(int(limit) - used, 0)
                room = left if room is None else min(room, left)
            break
    return room


cdef _Segment _segment_create(str label, uint64_t block_size, uint32_t capacity,
                              uint64_t alignment):
    cdef _Segment seg = _Segment.__new__(_Segment)
    cdef bytes id = _os.urandom(16)
    cdef bytes blabel = label.encode()
    cdef int rc
    if pool_shm_plan(&seg.l, block_size, capacity, alignment, _PAGE) < 0:
        raise ValueError(f"a SharedBufferPool of {capacity} blocks of {block_size} bytes "
                         f"(alignment {alignment}) is too big to address")
    room = _memory_room()
    if room is not None and seg.l.total_size > room:
        raise MemoryError(
            f"not enough memory for a SharedBufferPool of {capacity} x {block_size} bytes: "
            f"it needs {seg.l.total_size} bytes, and {room} are available (MemAvailable + "
            f"SwapFree, within this cgroup's limit)")
    rc = pool_shm_os_create(blabel, seg.l.total_size)
    if rc < 0:
        if -rc in (_errno.ENOSPC, _errno.ENOMEM, _errno.EFBIG):
            raise MemoryError(
                f"not enough shared memory for a SharedBufferPool of {capacity} x "
                f"{block_size} bytes ({seg.l.total_size} bytes): {_os.strerror(-rc)}")
        raise _os_error(rc, "cannot create the shared-memory segment")
    seg.fd = rc
    seg.mapped = seg.l.total_size
    base = pool_shm_os_map(seg.fd, seg.mapped, alignment)
    if base == NULL:
        raise MemoryError(f"cannot map {seg.mapped} bytes of shared memory")
    pool_shm_init(&seg.l, base, <const uint8_t *><char *>id)
    seg.id = id
    return seg


cdef _Segment _segment_open(int pid, int fd, object expect_id):
    """Maps another process's segment (/proc/pid/fd/fd), checking its header.
    OSError if it cannot be opened, ValueError if it is not a pool's."""
    cdef _Segment seg = _Segment.__new__(_Segment)
    cdef uint64_t size = 0
    cdef int rc = pool_shm_os_open(pid, fd, &size)
    cdef char *base
    if rc < 0:
        if -rc == _errno.EACCES:
            raise PermissionError(-rc, "the segment belongs to another user")
        if -rc == _errno.EINVAL:
            raise ValueError("not a SharedBufferPool segment (not a sealed memfd)")
        raise _os_error(rc, f"cannot open /proc/{pid}/fd/{fd}")
    seg.fd = rc
    if size < POOL_SHM_HEADER:
        raise ValueError(f"not a SharedBufferPool segment: {size} bytes, shorter than "
                         f"its header")
    base = pool_shm_os_map(seg.fd, size, _PAGE)
    if base == NULL:
        raise MemoryError(f"cannot map {size} bytes of shared memory")
    seg.l.base = base       # unmapped by __dealloc__ if the checks fail
    seg.mapped = size
    rc = pool_shm_check_header(&seg.l, base, size, _PAGE)
    if rc != 0:
        seg.l.base = base
        raise ValueError({
            POOL_SHM_ESMALL: "not a SharedBufferPool segment: shorter than its header",
            POOL_SHM_EMAGIC: "not a SharedBufferPool segment (no pool_ext magic)",
            POOL_SHM_EVERSION: "a SharedBufferPool segment of another layout version "
                               f"(this pool_ext reads version {POOL_SHM_VERSION})",
            POOL_SHM_ELAYOUT: "a SharedBufferPool segment whose header does not add up",
            POOL_SHM_ETRUNC: "a SharedBufferPool segment shorter than its layout",
        }.get(rc, "a bad SharedBufferPool segment"))
    if seg.l.alignment > _PAGE:
        # blocks aligned beyond a page need the mapping itself so aligned
        align = seg.l.alignment
        seg.l.base = NULL
        pool_shm_os_unmap(base, size)
        base = pool_shm_os_map(seg.fd, size, align)
        if base == NULL:
            raise MemoryError(f"cannot map {size} bytes of shared memory")
        seg.l.base = base
        rc = pool_shm_check_header(&seg.l, base, size, _PAGE)
        if rc != 0 or seg.l.alignment != align:    # changed meanwhile
            seg.l.base = base
            raise ValueError("a SharedBufferPool segment whose header changed while "
                             "it was attached")
    seg.id = (<char *>seg.l.header.id)[:16]
    if expect_id is not None and seg.id != expect_id:
        raise FileNotFoundError(_errno.ENOENT, "the segment found is another pool's")
    return seg


cdef uint64_t _PAGE = <uint64_t>_mmap.PAGESIZE


def _shm_unpickle_pool(bytes id, str name, tuple locators):
    """pickle's way back to a pool: this process's own if it has one,
    else a new attachment (through the locators, else the name)."""
    with _shm_lock:
        found = _shm_pools.get(id)
    if found is not None:
        return found
    errors = []
    for pid, fd in locators:
        try:
            return _pool_for(_segment_open(pid, fd, id), name, locators)
        except (OSError, ValueError) as err:
            errors.append(err)
    try:
        found = _attach(name)
    except (OSError, ValueError) as err:
        errors.append(err)
    else:
        if (<SharedBufferPool>found)._seg.id == id:
            return found
    for e in errors:
        if isinstance(e, (ValueError, PermissionError)):
            raise e       # found, but not ours to attach: say why
    last = errors[len(errors) - 1] if errors else None    # (wraparound is off)
    raise FileNotFoundError(
        f"cannot attach SharedBufferPool {name!r}: every process that could pass it "
        f"on has exited or closed it (last error: {last})")


cdef str _name_key(str name):
    """The name's socket address under pool_ext/<uid>/: a hash, so that
    every valid name fits in a Unix socket address (108 bytes)."""
    return _hashlib.sha256(name.encode()).hexdigest()[:40]


cdef SharedBufferPool _attach(object name):
    """SharedBufferPool.attach(name)."""
    cdef int pid, fd
    name = _check_name(name)
    with _shm_lock:
        for pool in list(_shm_pools.values()):
            # this process has it, and its creator still owns the name
            if (<SharedBufferPool>pool)._name == name and pool_load32(
                    &(<SharedBufferPool>pool)._l.header.named, POOL_ACQUIRE) == 1:
                return pool
    # the owner's two sockets, as /proc/net/unix lists them (an abstract
    # address shows as '@'): the name itself, and where its segment is
    prefix = f"@pool_ext/{_os.geteuid()}/{_name_key(name)}"
    owned = False
    where = []
    try:
        with open("/proc/net/unix") as f:
            lines = f.read().splitlines()[1:]
    except OSError as exc:
        raise FileNotFoundError(_errno.ENOENT, f"cannot look SharedBufferPool "
                                               f"{name!r} up: {exc}") from None
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        if fields[7] == prefix:
            owned = True
        elif fields[7].startswith(prefix + "/"):
            p, _, f_ = fields[7][len(prefix) + 1:].partition(".")
            if p.isdigit() and f_.isdigit() and len(p) < 10 and len(f_) < 10:
                where.append((int(p), int(f_)))
    if not owned:
        raise FileNotFoundError(_errno.ENOENT, f"no SharedBufferPool named {name!r} exists")
    error = None
    for pid, fd in where:
        try:
            seg = _segment_open(pid, fd, None)
        except (OSError, ValueError) as exc:
            error = exc
            continue
        if pool_load32(&(<_Segment>seg).l.header.named, POOL_ACQUIRE) != 1:
            continue    # a segment of an earlier pool of that name
        return _pool_for(seg, name, ((pid, fd),))
    if error is not None:
        raise error
    raise FileNotFoundError(_errno.ENOENT, f"no SharedBufferPool named {name!r} exists")


cdef object _pool_for(_Segment seg, str name, tuple locators):
    """This process's one pool object for seg: the one it has, or a new one."""
    cdef SharedBufferPool pool
    _shm_identity()              # fails here (no /proc), not in the first acquire
    with _shm_lock:
        found = _shm_pools.get(seg.id)
        if found is not None:
            return found         # (seg, a second mapping, goes)
        pool = SharedBufferPool.__new__(SharedBufferPool)
        pool._adopt(seg, name, locators)
        _shm_pools[seg.id] = pool
        return pool


@cython.final
@cython.no_gc   # references no object that could reference it back; and the GC
                # must never clear _seg (unmapping it) under a handle still alive
cdef class SharedBufferPool:
    """Fixed-size blocks in one shared-memory segment, lent to any process
    that has the pool: passed to a child (multiprocessing, an executor's
    initializer or task, a multiprocessing.Queue: pickling attaches), or
    attached by name with SharedBufferPool.attach(name).

    acquire(), try_acquire(), lease(), release() work as BufferPool's, across
    processes: a release in one process wakes a waiter in another.  Pickling
    a held SharedBuffer (or an array from empty()/zeros()) sends its block
    itself, not a copy.  A process that dies holding blocks loses them for
    nobody: reclaim() (which a waiting acquire() calls) gives them back.

    Linux only (a sealed memfd, futexes, /proc).
    """
    cdef _Segment _seg
    cdef pool_shm_layout_t *_l
    cdef bint _closed
    cdef str _name
    cdef int _name_fd          # the socket that owns the name; -1: not ours
    cdef int _loc_fd           # the socket that says where the segment is; -1: none
    cdef long _owner_pid       # the process that created it (owns the name)
    cdef tuple _locators       # (pid, fd) pairs through which others can open it
    cdef PyObject **_handles   # GIL builds: each slot's last released handle, for reuse
    cdef object __weakref__

    def __cinit__(self):
        self._name_fd = -1
        self._loc_fd = -1

    def __init__(self, block_size, capacity, *, alignment=64, name=None):
        cdef uint64_t size, align
        cdef uint32_t n
        cdef int fd
        if not POOL_SHM_SUPPORTED or not _sys.platform.startswith("linux"):
            raise NotImplementedError(
                f"SharedBufferPool needs Linux (a sealed memfd, futexes, /proc); "
                f"this is {_sys.platform} (docs/shared.md: the plan for macOS and Windows)")
        if self._seg is not None:
            raise PoolError("SharedBufferPool.__init__ called twice")
        size = _int_arg(block_size, "block_size", 1, None)
        n = _int_arg(capacity, "capacity", 1, POOL_SHM_MAX_CAPACITY)
        align = _int_arg(alignment, "alignment", 1, 1 << 30)
        if align & (align - 1):
            raise ValueError(f"alignment must be a power of two, got {alignment}")
        name = f"{_os.getpid()}-{_os.urandom(4).hex()}" if name is None else _check_name(name)
        key = _name_key(name)
        fd = pool_shm_os_name_bind(key.encode())
        if fd < 0:
            if -fd == _errno.EADDRINUSE:
                raise FileExistsError(_errno.EEXIST,
                                      f"a SharedBufferPool named {name!r} exists already")
            raise _os_error(fd, "cannot claim the pool's name")
        self._name_fd = fd
        self._owner_pid = pool_shm_os_getpid()
        try:
            _shm_identity()          # fails here (no /proc), not in the first acquire
            seg = _segment_create(name, size, n, align)
            fd = pool_shm_os_name_bind(f"{key}/{self._owner_pid}.{seg.fd}".encode())
            if fd < 0:
                raise _os_error(fd, "cannot publish the pool's segment")
            self._loc_fd = fd
            self._adopt(seg, name, ())
        except BaseException:
            self._drop_name()
            raise
        pool_store32(&self._l.header.named, 1, POOL_RELEASE)
        with _shm_lock:
            _shm_pools[seg.id] = self
            _shm_named.add(self)

    cdef int _adopt(self, _Segment seg, str name, tuple locators) except -1:
        if POOL_CACHE_HANDLES:
            self._handles = <PyObject **>calloc(seg.l.capacity, sizeof(PyObject *))
            if self._handles == NULL:
                raise MemoryError("cannot allocate a SharedBufferPool's handle cache")
        self._seg = seg
        self._l = &seg.l
        self._name = name
        self._locators = locators
        return 0

    @staticmethod
    def attach(name):
        """The pool of that name, created by a live process of this user (the
        same object if this process has it).  FileNotFoundError if there is
        none; ValueError if it is not a pool of this layout."""
        return _attach(name)

    cdef void _drop_name(self) noexcept:
        """Gives the name up (close, dealloc, or in a fork child, where the
        inherited socket is not ours)."""
        cdef int fd = self._name_fd, loc = self._loc_fd
        self._loc_fd = -1
        if loc >= 0:
            pool_shm_os_close(loc)
        if fd >= 0:
            self._name_fd = -1
            if self._l != NULL and pool_shm_os_getpid() == self._owner_pid:
                # release: attach() that sees 0 sees the name given up
                pool_store32(&self._l.header.named, 0, POOL_RELEASE)
            pool_shm_os_close(fd)

    def __dealloc__(self):
        cdef uint32_t i
        self._drop_name()
        if self._handles != NULL:
            for i in range(self._l.capacity):
                Py_XDECREF(self._handles[i])
            free(self._handles)

    def __reduce__(self):
        self._check_attached()
        return (_shm_unpickle_pool, (self._seg.id, self._name, self._where()))

    cdef tuple _where(self):
        """Where another process can open the segment: here, then the
        (pid, fd) pairs this process was given (the creator's first)."""
        here = ((_os.getpid(), self._seg.fd),)
        return here + tuple(x for x in self._locators if x not in here)[:3]

    cdef int _check_attached(self) except -1:
        if self._seg is None:
            raise PoolError("this SharedBufferPool was never initialised")
        return 0

    # ---- lending ----------------------------------------------------------

    cdef inline SharedBuffer _bind(self, SharedBuffer buf, uint32_t i):
        """buf (new, dead) is now the handle of slot i, which we hold."""
        buf._pool = self
        buf._index = i
        buf._ptr = self._l.blocks + <uint64_t>i * self._l.stride
        buf._len = <Py_ssize_t>self._l.block_size
        buf._state = 0
        return buf

    cdef object _take(self, object timeout):
        cdef int64_t i
        cdef SharedBuffer buf
        if self._l == NULL:
            self._check_attached()
        if self._closed:
            raise PoolClosed(f"{self!r} is closed")
        if pool_shm_hungry(self._l):
            return self._wait(timeout)       # others wait: no barging
        i = pool_shm_take(self._l, _shm_identity())
        if i >= 0:
            return self._hand_out(<uint32_t>i)
        return self._wait(timeout)

    cdef inline object _hand_out(self, uint32_t i):
        """Slot i is ours (HELD by this process): its handle."""
        cdef PyObject *cached
        cdef SharedBuffer buf
        if POOL_CACHE_HANDLES:
            cached = self._handles[i]
            # only the cache holds it (exact with the GIL): nobody can see it
            # come back to life
            if cached != NULL and pool_refcnt(cached) == 1:
                self._handles[i] = NULL
                buf = <SharedBuffer>cached
                Py_DECREF(buf)               # the cache's reference: buf's now
                return self._bind(buf, i)
        return self._new_handle(i)

    cdef object _new_handle(self, uint32_t i):
        """A new handle for slot i, or the slot back if even that fails
        (MemoryError)."""
        try:
            return self._bind(SharedBuffer.__new__(SharedBuffer), i)
        except BaseException:
            pool_shm_give(self._l, i, _shm_identity())
            raise

    cdef object _wait(self, object timeout):
        """acquire()'s slow path: no free block, or waiters to let go first."""
        cdef double t = _parse_timeout(timeout)
        cdef double deadline = _monotonic() + t if t >= 0 else -1.0
        cdef double now, last_reclaim, left
        cdef int64_t i
        cdef uint32_t seq
        cdef int rc
        cdef int64_t slice_ns
        cdef uint64_t until, claim = 0
        # others wait: give them the next release before we look (pool_shm.h)
        cdef bint polite = _others_wait(self._l)
        if not polite:
            i = pool_shm_take(self._l, _shm_identity())
            if i >= 0:
                return self._hand_out(<uint32_t>i)
            # an acquire that would wait reclaims the dead's blocks first
            if self._reclaim(False):
                i = pool_shm_take(self._l, _shm_identity())
                if i >= 0:
                    return self._hand_out(<uint32_t>i)
        last_reclaim = _monotonic()
        pool_shm_waiters_add(self._l, 1)
        try:
            while True:
                pool_shm_will_sleep(self._l)
                seq = pool_shm_wake_seq(self._l)
                if not polite:
                    i = pool_shm_take(self._l, _shm_identity())
                    if i >= 0:
                        return self._hand_out(<uint32_t>i)
                if self._closed:
                    raise PoolClosed(f"{self!r} is closed")
                now = _monotonic()
                if deadline >= 0 and now >= deadline:
                    raise PoolExhausted(
                        f"no free block in {self!r} after {t:g} s "
                        f"(held by: {self._holders_text()})")
                left = _SHM_SLICE_MS / 1000.0
                if POOL_PARK_SLICE_US:
                    left = POOL_PARK_SLICE_US / 1e6     # free-threaded: pool_mode.h
                if polite:
                    until = pool_shm_hungry_until(self._l)
                    if not _others_wait(self._l):
                        polite = False
                        continue
                    if (until - pool_clock_ns()) / 1e9 < left:
                        left = (until - pool_clock_ns()) / 1e9
                else:
                    claim = pool_clock_ns() + _SHM_HUNGRY_NS
                    pool_shm_set_hungry(self._l, claim)
                if deadline >= 0 and deadline - now < left:
                    left = deadline - now
                slice_ns = <int64_t>(left * 1e9)
                with nogil:
                    rc = pool_shm_sleep(self._l, seq, slice_ns)
                polite = False
                PyErr_CheckSignals()      # Ctrl-C ends the wait
                if POOL_PARK_SLICE_US:
                    # frees what other threads dropped and queued to us: it
                    # may be the very array or handle that holds our block
                    _run_pending()
                if _monotonic() - last_reclaim >= 1.0:
                    self._reclaim(False)  # a holder may have died meanwhile
                    last_reclaim = _monotonic()
        finally:
            pool_shm_waiters_add(self._l, -1)
            if claim:
                pool_shm_clear_hungry(self._l, claim)   # ours, unless renewed since

    @cython.always_allow_keywords(True)
    def acquire(self, timeout=None):
        """A free block (a SharedBuffer), waiting up to timeout seconds (None:
        for ever) for one to be released by any process.  PoolExhausted (a
        TimeoutError) when time runs out; PoolClosed once closed here."""
        if not _timeout_fast(timeout):
            _parse_timeout(timeout)
        return self._take(timeout)

    def try_acquire(self):
        """A free block, or None at once (also while other threads or
        processes wait: their turn comes first)."""
        cdef int64_t i
        cdef SharedBuffer buf
        if self._l == NULL:
            self._check_attached()
        if self._closed:
            raise PoolClosed(f"{self!r} is closed")
        if pool_shm_hungry(self._l) and _others_wait(self._l):
            return None                      # others wait: their turn first
        buf = SharedBuffer.__new__(SharedBuffer)
        i = pool_shm_take(self._l, _shm_identity())
        if i < 0:
            return None
        return self._bind(buf, <uint32_t>i)

    @cython.always_allow_keywords(False)   # METH_O
    def release(self, buf):
        """Gives buf back (as buf.release()).  PoolError if buf is not a held
        block of this pool."""
        if type(buf) is not SharedBuffer:
            raise TypeError(f"release() takes a SharedBuffer, not {type(buf).__name__}")
        if (<SharedBuffer>buf)._pool is not self:
            raise PoolError("release of a SharedBuffer from another pool")
        (<SharedBuffer>buf)._release()

    def lease(self, timeout=None):
        """A context manager: acquire(timeout) at entry, release at exit."""
        cdef _SharedLease lease = _SharedLease.__new__(_SharedLease)
        _check_timeout(timeout)
        lease._pool = self
        lease._timeout = timeout
        return lease

    def empty(self, shape, dtype=None, order="C", *, timeout=None):
        """A numpy array of shape and dtype over one block (like numpy.empty),
        which must fit in block_size.  It holds the block until it and all its
        views have died.  Pickling the array sends the block (no copy)."""
        return self._array(shape, dtype, order, timeout, False)

    def zeros(self, shape, dtype=None, order="C", *, timeout=None):
        """Like empty(), filled with zeros."""
        return self._array(shape, dtype, order, timeout, True)

    cdef object _array(self, object shape, object dtype, object order, object timeout,
                       bint zero):
        cdef _ArrayShape req
        self._check_attached()
        _check_timeout(timeout)
        descr = _array_request(shape, dtype, order, &req)    # before taking a block
        if req.nbytes > self._l.block_size:
            raise ValueError(f"an array of {req.nbytes} bytes does not fit in this "
                             f"pool's block_size ({self._l.block_size})")
        buf = <SharedBuffer>self._take(timeout)
        if zero or req.needs_init:
            memset(buf._ptr, 0, req.nbytes)
        try:
            return _shared_array(buf, &req, descr)
        except BaseException:     # MemoryError: the block goes back, quietly
            buf._release()
            raise

    # ---- the dead's blocks, and what is where ------------------------------

    def reclaim(self, *, in_transit=False):
        """Gives back the blocks held by processes that no longer run (killed,
        crashed, exited without releasing): how many.  in_transit=True also
        frees blocks pickled but never unpickled: only when no such pickle can
        still be loaded.  PoolError if a slot word is corrupt (the segment was
        written by something else than pool_ext); the others are reclaimed
        first."""
        self._check_attached()
        return self._reclaim(bool(in_transit))

    cdef int _reclaim(self, bint in_transit) except -1:
        cdef uint64_t me = _shm_identity(), w
        cdef uint32_t i, pid
        cdef int n = 0
        alive = {}
        corrupt = []
        for i in range(self._l.capacity):
            w = pool_shm_load(self._l, i)
            kind = pool_shm_kind(w)
            if kind == POOL_SHM_FREE or w == me:
                continue
            if kind == POOL_SHM_TRANSIT:
                if not in_transit:
                    continue
            elif kind == POOL_SHM_HELD:
                pid = pool_shm_word_pid(w)
                tag = alive.get(pid, -1)
                if tag == -1:
                    start = _proc_start(pid) if pid != 0 else None
                    tag = None if start is None else start & 0xFFFFFFFF
                    alive[pid] = tag
                if tag == pool_shm_word_tag(w):
                    continue              # its holder runs
            else:
                corrupt.append(i)
                continue
            if pool_shm_swap(self._l, i, w, 0):
                pool_fetch_add64(&self._l.header.reclaimed, 1, POOL_RELAXED)
                pool_shm_freed(self._l, i)
                n += 1
        if corrupt:
            raise PoolError(f"slot words {corrupt[:8]} of {self!r} are corrupt (the "
                            f"segment was written by something else than pool_ext)")
        return n

    def stats(self):
        """A dict: capacity, in_use (held), in_transit, free, corrupt,
        holders ({pid: blocks held}), hand-outs, releases, reclaimed, waiters
        (processes asleep in acquire)."""
        cdef uint32_t i
        cdef uint64_t w
        self._check_attached()
        holders = {}
        counts = [0, 0, 0, 0]
        for i in range(self._l.capacity):
            w = pool_shm_load(self._l, i)
            kind = pool_shm_kind(w)
            counts[kind] += 1
            if kind == POOL_SHM_HELD:
                pid = pool_shm_word_pid(w)
                holders[pid] = holders.get(pid, 0) + 1
        h = self._l.header
        return {"capacity": self._l.capacity, "in_use": counts[POOL_SHM_HELD],
                "in_transit": counts[POOL_SHM_TRANSIT], "free": counts[POOL_SHM_FREE],
                "corrupt": counts[3], "holders": holders,
                "handouts": pool_load64(&h.handouts, POOL_RELAXED),
                "releases": pool_load64(&h.releases, POOL_RELAXED),
                "reclaimed": pool_load64(&h.reclaimed, POOL_RELAXED),
                "waiters": pool_load32(&h.waiters, POOL_RELAXED)}

    cdef str _holders_text(self):
        s = self.stats()
        return (", ".join(f"pid {p}: {n}" for p, n in sorted(s["holders"].items()))
                or "nobody") + (f"; {s['in_transit']} in transit" if s["in_transit"] else "")

    def close(self):
        """This process's pool hands out nothing more (PoolClosed), and gives
        up the name if it owns it.  Blocks held stay valid until released;
        other processes' pools are unaffected.  Idempotent."""
        with cython.critical_section(self):   # one thread closes the name's socket
            if self._closed:
                return
            self._closed = True
            if self._l != NULL:
                self._drop_name()
        if self._l != NULL:
            pool_shm_freed(self._l, pool_load32(&self._l.header.hint, POOL_RELAXED)
                           % self._l.capacity)   # wake our own sleepers to see it

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def name(self):
        """The name attach() finds it by (while its creator owns it)."""
        return self._name

    @property
    def block_size(self):
        return self._l.block_size if self._l != NULL else 0

    @property
    def capacity(self):
        return self._l.capacity if self._l != NULL else 0

    @property
    def alignment(self):
        return self._l.alignment if self._l != NULL else 0

    @property
    def closed(self):
        return self._closed

    @property
    def in_use(self):
        """Blocks held or in transit, by any process."""
        s = self.stats()
        return s["in_use"] + s["in_transit"]

    @property
    def available(self):
        """Free blocks."""
        return self.stats()["free"]

    def __repr__(self):
        if self._l == NULL:
            return "<SharedBufferPool uninitialised>"
        return (f"<SharedBufferPool {self._name!r} {self._l.capacity} x "
                f"{self._l.block_size} bytes{' closed' if self._closed else ''}>")


@cython.final
cdef class _SharedLease:
    cdef SharedBufferPool _pool
    cdef object _timeout
    cdef SharedBuffer _buf

    def __enter__(self):
        if self._buf is not None:
            raise PoolError("this lease is already entered")
        self._buf = <SharedBuffer>self._pool._take(self._timeout)
        return self._buf

    def __exit__(self, *exc):
        buf, self._buf = self._buf, None
        if buf is not None:
            (<SharedBuffer>buf)._release_if_live()
        return False


# ---- the handle ---------------------------------------------------------------

cdef enum:
    _SB_RELEASED = 1     # released here (maybe waiting for its exports to end)
    _SB_SENT = 2         # pickled: the block is in transit, or someone else's
    _SB_EXPORT = 4       # one buffer export (the count is state >> 2)


@cython.final
@cython.no_gc   # references only its pool, which references no handle
@cython.freelist(16)
cdef class SharedBuffer:
    """One block of a SharedBufferPool, held by this process: writable,
    aligned, the buffer protocol (memoryview(buf), numpy.frombuffer(buf),
    f.readinto(buf)).  Release it with buf.release(), pool.release(buf) or
    ``with``.  Pickling it sends the block to whoever unpickles it (once):
    this handle is then released.  Used after release or sending, it raises
    ValueError."""
    cdef SharedBufferPool _pool
    cdef char *_ptr
    cdef Py_ssize_t _len
    cdef uint64_t _state       # _SB_* bits; atomic on free-threaded builds
    cdef uint32_t _index

    def __cinit__(self):
        self._state = _SB_RELEASED     # a handle no pool made is dead

    def __dealloc__(self):
        if self._pool is not None and pool_load64(&self._state, POOL_ACQUIRE) == 0:
            # dropped while held (no export can be alive: exports reference us)
            if _give_quietly(self._pool, self._index) == 0:
                _warnings.warn(f"SharedBuffer (block {self._index} of {self._pool!r}) was "
                               f"never released; it was returned when garbage collected",
                               ResourceWarning, stacklevel=1)

    cdef int _mark(self, uint64_t bit) except -1:
        """Sets RELEASED or SENT; returns the exports alive then.  PoolError
        if already released or sent."""
        cdef uint64_t s = pool_load64(&self._state, POOL_ACQUIRE)
        while True:
            if s & (_SB_RELEASED | _SB_SENT):
                raise PoolError("release of a SharedBuffer that was already released"
                                if s & _SB_RELEASED else
                                "this SharedBuffer's block was sent to another process")
            if pool_cas64(&self._state, &s, s | bit, POOL_ACQ_REL, POOL_ACQUIRE):
                return <int>(s >> 2)

    cdef int _give_back(self) except -1:
        cdef SharedBufferPool pool = self._pool
        cdef PyObject *old
        if pool_shm_give(pool._l, self._index, _shm_identity()) < 0:
            self._not_ours()
        if POOL_CACHE_HANDLES:
            # kept for the slot's next hand-out; it lets go of the pool (the
            # cache must not keep its pool alive)
            old = pool._handles[self._index]
            if old != <PyObject *>self:
                Py_INCREF(self)
                pool._handles[self._index] = <PyObject *>self
                Py_XDECREF(old)
            self._pool = None
        return 0

    cdef int _release(self) except -1:
        if pool_load64(&self._state, POOL_ACQUIRE) & (_SB_RELEASED | _SB_SENT) == 0 and \
                pool_shm_load(self._pool._l, self._index) != _shm_identity():
            # not ours (a fork child's copy, a block reclaimed or written
            # over): this handle is dead, and nothing it does later (its
            # dealloc, an export's end) may give back what may be another
            # handle's block by then
            self._disown()
            self._not_ours()
        if self._mark(_SB_RELEASED) == 0:
            self._give_back()
        return 0

    cdef void _disown(self) noexcept:
        cdef uint64_t s = pool_load64(&self._state, POOL_ACQUIRE)
        while not pool_cas64(&self._state, &s, s | _SB_RELEASED | _SB_SENT, POOL_ACQ_REL,
                             POOL_ACQUIRE):
            pass

    cdef int _not_ours(self) except -1:
        raise PoolError(
            f"block {self._index} of {self._pool!r} is no longer held by this process, "
            f"or never was (a handle inherited through fork() is the parent's; or the "
            f"block was reclaimed, or the segment written over)")

    cdef int _release_if_live(self) except -1:
        if pool_load64(&self._state, POOL_ACQUIRE) & (_SB_RELEASED | _SB_SENT) == 0:
            try:
                self._release()
            except PoolError:
                pass       # another thread released it first
        return 0

    cdef int _check_live(self) except -1:
        if pool_load64(&self._state, POOL_ACQUIRE) & (_SB_RELEASED | _SB_SENT):
            raise ValueError(_SHM_DEAD)
        return 0

    def release(self):
        """Gives the block back; PoolError if already released or sent.  If a
        memoryview still exports it, it goes back when the last one ends."""
        self._release()

    @property
    def released(self):
        """True once released or sent."""
        return pool_load64(&self._state, POOL_ACQUIRE) & (_SB_RELEASED | _SB_SENT) != 0

    @property
    def pool(self):
        """The SharedBufferPool it came from; None once released or sent."""
        if pool_load64(&self._state, POOL_ACQUIRE) & (_SB_RELEASED | _SB_SENT):
            return None
        return self._pool

    @property
    def index(self):
        """The block's slot in the pool (the same in every process)."""
        return self._index

    def __len__(self):
        self._check_live()
        return self._len

    def __enter__(self):
        self._check_live()
        return self

    def __exit__(self, *exc):
        self._release_if_live()
        return False

    def __getbuffer__(self, Py_buffer *view, int flags):
        cdef uint64_t s = pool_load64(&self._state, POOL_ACQUIRE)
        while True:
            if s & (_SB_RELEASED | _SB_SENT):
                raise ValueError(_SHM_DEAD)
            if pool_cas64(&self._state, &s, s + _SB_EXPORT, POOL_ACQ_REL, POOL_ACQUIRE):
                break
        view.buf = self._ptr
        view.obj = self
        view.len = self._len
        view.readonly = 0
        view.itemsize = 1
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = b"B"
        view.ndim = 1
        view.shape = &self._len if (flags & PyBUF_ND) else NULL
        view.strides = &_ONE if (flags & PyBUF_STRIDES) == PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        # the last export of a released handle gives the block back
        if pool_fetch_add64(&self._state, <uint64_t>0 - _SB_EXPORT, POOL_ACQ_REL) == \
                _SB_EXPORT | _SB_RELEASED:
            _give_quietly(self._pool, self._index)

    def __reduce__(self):
        return self._send(None)

    cdef tuple _send(self, object array_spec):
        """Puts the block in transit: (the unpickling call, its arguments)."""
        cdef uint64_t ticket, s
        if self._pool is None:
            raise ValueError(_SHM_DEAD)
        ticket = int.from_bytes(_os.urandom(8), "little") & ((1 << 62) - 1)
        s = pool_load64(&self._state, POOL_ACQUIRE)
        while True:     # live and not exported -> SENT, in one step
            if s & (_SB_RELEASED | _SB_SENT):
                raise ValueError(_SHM_DEAD)
            if s >> 2:
                raise BufferError("cannot send a SharedBuffer while a memoryview of it "
                                  "is alive here")
            if pool_cas64(&self._state, &s, _SB_SENT, POOL_ACQ_REL, POOL_ACQUIRE):
                break
        if not pool_shm_swap(self._pool._l, self._index, _shm_identity(),
                             pool_shm_transit_word(ticket)):
            raise PoolError(f"block {self._index} of {self._pool!r} is no longer held by "
                            f"this process; nothing was sent")
        pool = self._pool
        # one flat call: the pickle names one global (each costs the loader
        # an import lookup), and the pool travels as its id and locators
        return (_shm_take_sent, (pool._seg.id, pool._name, pool._where(), self._index,
                                 ticket, array_spec))

    def __repr__(self):
        if pool_load64(&self._state, POOL_ACQUIRE) & (_SB_RELEASED | _SB_SENT):
            return "<SharedBuffer released>"
        return f"<SharedBuffer block={self._index} size={self._len}>"


cdef int _give_quietly(SharedBufferPool pool, uint32_t i) noexcept:
    """Gives slot i back where no exception can be raised (dealloc, the end
    of an export): 0, or -1 if this process did not hold it (a handle
    inherited through fork(), say)."""
    cdef uint64_t me = pool_load64(&_shm_me, POOL_RELAXED)
    if me == 0 or pool._l == NULL:
        return -1
    return pool_shm_give(pool._l, i, me)


def _shm_take_sent(bytes id, str name, tuple locators, index, ticket, array_spec):
    """What a pickled block unpickles with: its pool (this process's, or
    attached now), then _shm_receive."""
    with _shm_lock:
        pool = _shm_pools.get(id)
    if pool is None:
        pool = _shm_unpickle_pool(id, name, locators)
    return _shm_receive(pool, index, ticket, array_spec)


def _shm_receive(SharedBufferPool pool not None, index, ticket, array_spec):
    """The unpickling of a sent block: this process holds it now.  Once: a
    second load of the same pickle raises PoolError.  Everything in the
    pickle is checked before the block is taken."""
    cdef uint32_t i
    cdef _ArrayShape req
    pool._check_attached()
    if type(index) is not int or not 0 <= index < pool._l.capacity:
        raise PoolError(f"a pickled SharedBuffer names block {index!r}, which {pool!r} "
                        f"does not have")
    if type(ticket) is not int or not 0 <= ticket < (1 << 62):
        raise PoolError("a pickled SharedBuffer with a malformed ticket")
    i = index
    if array_spec is not None:
        try:
            if type(array_spec) is not tuple or len(<tuple>array_spec) != 3:
                raise PoolError("a pickled shared array with a malformed description")
            dtype, shape, order = array_spec
            descr = _array_request(shape, dtype, order, &req)
            if req.nbytes > pool._l.block_size:
                raise PoolError("a pickled shared array larger than its block")
        except BaseException:
            # nobody else can load this block (the ticket is in this pickle
            # only): it goes back to the pool, not into transit for ever
            if pool_shm_swap(pool._l, i, pool_shm_transit_word(ticket), 0):
                pool_shm_freed(pool._l, i)
            raise
    if not pool_shm_swap(pool._l, i, pool_shm_transit_word(ticket), _shm_identity()):
        raise PoolError(f"block {index} of {pool!r} was already received (a pickled block "
                        f"can be loaded once), or reclaimed")
    buf = pool._hand_out(i)
    if array_spec is None:
        return buf
    try:
        return _shared_array(buf, &req, descr)
    except BaseException:
        (<SharedBuffer>buf)._release()
        raise


# ---- arrays -------------------------------------------------------------------

@cython.final
@cython.no_gc
cdef class _SharedArrayBase:
    """The base of an array made by SharedBufferPool.empty()/zeros(): holds
    its block, gives it back when the last view dies; exposes nothing."""
    cdef SharedBuffer _buf

    def __dealloc__(self):
        if self._buf is not None:
            self._buf._release_if_live()

    def __repr__(self):
        return "<pool_ext shared array base>"


def _make_shared_array_type():
    import numpy

    class SharedArray(numpy.ndarray):
        """A numpy.ndarray over a SharedBufferPool block.  Pickling the array
        that empty()/zeros() returned sends its block (no copy): the array
        here becomes read-only, and its block is the receiver's.  Views and
        results of arithmetic pickle as ordinary arrays (a copy)."""

        def __reduce__(self):
            return _shared_array_reduce(self)

        def __reduce_ex__(self, protocol):
            return _shared_array_reduce(self)

    SharedArray.__module__ = "pool_ext"
    SharedArray.__qualname__ = "SharedArray"
    return SharedArray


cdef object _shared_array(SharedBuffer buf, _ArrayShape *req, object descr):
    global _SharedArray
    cdef _SharedArrayBase base = _SharedArrayBase.__new__(_SharedArrayBase)
    base._buf = buf
    if _SharedArray is None:
        _SharedArray = _make_shared_array_type()
    Py_INCREF(descr)    # pool_ndarray_new_as steals both, also when it fails
    Py_INCREF(base)
    return pool_ndarray_new_as(<void *>_SharedArray, <PyArray_Descr *><PyObject *>descr,
                               req.nd, req.dims, buf._ptr, req.fortran, <PyObject *>base)


def _shared_array_reduce(arr):
    import numpy
    base = arr.base
    if type(base) is _SharedArrayBase and (<_SharedArrayBase>base)._buf is not None:
        buf = (<_SharedArrayBase>base)._buf
        layout = pool_ndarray_layout(arr)
        if pool_ndarray_data(arr) == <void *>(<SharedBuffer>buf)._ptr and layout != 0:
            dt = arr.dtype
            # a plain dtype travels as its string ('<f8'), which needs no
            # global to load; a structured one as itself
            spec = (dt.str if dt.fields is None and dt.subdtype is None and
                    dt.metadata is None else dt, arr.shape,
                    "C" if layout == 1 else "F")
            rv = (<SharedBuffer>buf)._send(spec)
            arr.flags.writeable = False     # its block is the receiver's now
            return rv
    # a view, or an array that owns its memory: an ordinary (copying) pickle
    return arr.view(numpy.ndarray).__reduce__()
