# SharedBufferPool, part 1 of 3: the process's side of a shared segment
# (included by _pool.pyx, before _shared.pxi and _shared_buffer.pxi).  The
# segment's layout and its slot words are in src/pool_shm.h.
#
#   _shm_identity     this process's HELD word: (pid, tag), tag the low 32
#                     bits of its start time, so a dead holder's pid reused
#                     by a new process is told apart; computed once per
#                     process (and again in a fork child)
#   _Segment          one mapping of a segment (its fd, its layout copied
#                     out of the header once): unmapped when the last pool
#                     object and handle of this process that use it are gone
#   _segment_create / _segment_open, _memory_room
#   _attach, _pool_for, _shm_unpickle_pool
#                     finding a pool: by name (/proc/net/unix), by pickle;
#                     one pool object per segment per process
#
# Part 2, _shared.pxi: SharedBufferPool itself.  Part 3, _shared_buffer.pxi:
# the SharedBuffer handle, sending blocks by pickle, shared arrays.


from pool_ext.includes.pool_shm cimport *

import errno as _errno
import hashlib as _hashlib
import mmap as _mmap
import sys as _sys

cdef class SharedBuffer
cdef class _SharedLease


cdef uint64_t _shm_me = 0          # this process's HELD word; 0: not known yet
cdef uint64_t _shm_ticket_key = 0  # this process's random ticket key (set with _shm_me)
cdef uint64_t _shm_tickets = 0     # tickets issued by this process (pool_shm_ticket's n)
cdef uint32_t _SHM_SLICE_MS = 100  # longest single sleep of a waiter (pool_shm.h)
cdef uint64_t _SHM_HUNGRY_NS = 200000000   # how long a waiter's claim lasts unrenewed
# the registries' lock; re-entrant: the fork hook takes it, and a fork() can
# come from a finalizer run by a collection inside a section that holds it
cdef object _shm_lock = _threading.RLock()
cdef object _shm_pools = _weakref.WeakValueDictionary()   # segment id -> pool
cdef object _shm_named = _weakref.WeakSet()               # pools owning a name here
# fd -> id(pool): the name sockets this process bound (the name and the
# locator).  A fork child closes all of them in its hook, whatever state
# their pools are in (one being made, or dying), and a pool closes an fd
# only while it is listed as its own: never a number the child reused.
cdef object _shm_sockets = {}
cdef object _SharedArray = None                           # made on first array call
cdef object _NAME_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
cdef str _SHM_DEAD = "operation on a released SharedBuffer (or one sent to another process)"


def _proc_start(pid):
    """The start time of process pid (clock ticks since the host's boot), or
    None if no such process is running: gone, or a zombie (it can release
    nothing).  Any other error reading /proc (EMFILE, say) raises: a holder
    is never taken for dead because its file could not be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X") and not _threads_left(pid):
        return None
    return int(rest[19]) - _boot_offset_ticks()     # field 22; rest[0] is field 3


cdef tuple _timens = (0, 0, 0)     # (pid, boottime ns, monotonic ns): this process's
# CLOCK_MONOTONIC as every process of the host reads it (pool_clock_ns() less
# this process's time-namespace offset): claims in the header are compared
# across processes.  Set with _shm_me (_shm_identity_slow).
cdef int64_t _shm_mono_offset_ns = 0


cdef inline uint64_t _shm_clock_ns() noexcept:
    return <uint64_t>(<int64_t>pool_clock_ns() - _shm_mono_offset_ns)


def _timens_offsets():
    """This process's time-namespace offsets, (boottime, monotonic) in ns.
    /proc/<pid>/stat gives start times shifted by the *reader's* boot-time
    offset (Linux 5.6+), and CLOCK_MONOTONIC is shifted by the monotonic
    one: a holder in another time namespace would compute another tag for
    itself than the others compute for it (and be taken for a reused pid,
    i.e. for dead), and its waiting claims would be read as far past or far
    ahead.  Subtracted, every process gets the host's figures.  (Read once
    per pid: a fork child may be in another namespace.)"""
    global _timens
    pid = _os.getpid()
    if _timens[0] == pid:
        return _timens[1], _timens[2]
    boot = mono = 0
    try:
        # the file gives the offsets of the namespace this process's
        # children get: after unshare(CLONE_NEWTIME) not its own one (which
        # is then, almost always, the host's: no offsets)
        if _os.stat("/proc/self/ns/time").st_ino != \
                _os.stat("/proc/self/ns/time_for_children").st_ino:
            raise FileNotFoundError
        with open("/proc/self/timens_offsets", "rb") as f:
            for line in f:
                fields = line.split()
                if len(fields) == 3:
                    ns = int(fields[1]) * 1_000_000_000 + int(fields[2])
                    if fields[0] == b"boottime":
                        boot = ns
                    elif fields[0] == b"monotonic":
                        mono = ns
    except FileNotFoundError:
        pass            # a kernel without time namespaces: no offsets
    _timens = (pid, boot, mono)
    return boot, mono


def _boot_offset_ticks():
    """The boot-time offset of this process's time namespace, in clock ticks
    (those of /proc/<pid>/stat's start times)."""
    return _timens_offsets()[0] * _os.sysconf("SC_CLK_TCK") // 1_000_000_000


def _threads_left(pid):
    """Whether a process whose main thread is a zombie still runs other
    threads (it ended with pthread_exit(), they go on): then it lives.
    (An error other than "no such process" raises, as in _proc_start.)"""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Threads:"):
                    return int(line.split()[1]) > 1
    except (FileNotFoundError, ProcessLookupError):
        return False
    except (ValueError, IndexError):
        return True     # unreadable: not taken for dead
    return False


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
    global _shm_mono_offset_ns
    _shm_mono_offset_ns = _timens_offsets()[1]
    # relaxed: a thread that reads the key of another racing thread still
    # issues distinct tickets (only key + n must differ)
    pool_store64(&_shm_ticket_key, int.from_bytes(_os.urandom(8), "little"), POOL_RELAXED)
    # relaxed: every thread computes the same value
    pool_store64(&_shm_me, me, POOL_RELAXED)
    return me


# Which threads' before-fork hook holds the lock (one flag per thread: two
# threads forking at once each take it in turn, and each releases only its
# own; a single flag, reset by the second, left the first's lock held).
_shm_fork_local = _threading.local()


def _shm_before_fork():
    # no fork() inside a section that holds the lock: the child would find
    # it held by a thread it does not have, and hang at its first pickle
    _shm_fork_local.locked = False
    _shm_lock.acquire()     # (a KeyboardInterrupt here: the fork goes on without it)
    _shm_fork_local.locked = True


def _shm_after_fork_in_parent():
    if getattr(_shm_fork_local, "locked", False):
        _shm_fork_local.locked = False
        _shm_lock.release()


def _shm_after_fork_in_child():
    """A fork child is another holder (with its own ticket key), and does
    not own its parent's names.  Only this thread runs here."""
    global _shm_me, _shm_lock
    _shm_me = 0
    try:
        pool_shm_os_forget_names()   # (done already, by _shm_forked_child)
        _shm_sockets.clear()
        for pool in list(_shm_named):
            (<SharedBufferPool>pool)._drop_name()   # (closes nothing now)
        for pool in list(_shm_pools.values()):
            (<SharedBufferPool>pool)._locate()
    finally:
        if getattr(_shm_fork_local, "locked", False):
            _shm_fork_local.locked = False
            _shm_lock.release()
        else:
            # the hook was interrupted while another thread held the lock:
            # that thread is not in this process, so nobody will release it
            _shm_lock = _threading.RLock()


cdef void _close_socket(SharedBufferPool pool, int fd) noexcept:
    """Closes one of pool's name sockets, if it is still listed as pool's."""
    try:
        with _shm_lock:
            if _shm_sockets.get(fd) == id(pool):
                del _shm_sockets[fd]
                pool_shm_os_name_close(fd)
    except BaseException:   # (MemoryError) leave the fd: a leak, not a wrong close
        pass


cdef void _shm_forked_child() noexcept nogil:
    """pthread_atfork's child handler: also a fork() that bypasses Python's
    hooks (libc's, called through ctypes or by C code) makes another holder:
    without this, its child would release the parent's blocks as its own."""
    global _shm_me
    _shm_me = 0
    pool_shm_os_forget_names()   # nor keep its parent's names


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(before=_shm_before_fork, after_in_parent=_shm_after_fork_in_parent,
                         after_in_child=_shm_after_fork_in_child)
pool_shm_os_atfork(_shm_forked_child)


class _NotASegment(ValueError):
    """What a locator leads to is no segment at all (not a sealed memfd)."""


cdef object _os_error(int rc, str what):
    """An OSError (the right subclass, by errno) for a -errno rc."""
    return OSError(-rc, f"{what}: {_os.strerror(-rc)}")


cdef object _name_error(int rc, str what):
    """_os_error for pool_shm_os_name_bind, whose -EOVERFLOW means its own
    table of sockets (two per pool) is full."""
    if -rc == _errno.EOVERFLOW:
        return OSError(_errno.EMFILE, f"{what}: 32,768 SharedBufferPools are alive in this "
                                      f"process already (the most it keeps)")
    return _os_error(rc, what)


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
    name_key = _name_key_bytes(label)
    pool_shm_init(&seg.l, base, <const uint8_t *><char *>id,
                  <const uint8_t *><char *>name_key)
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
            raise _NotASegment("not a SharedBufferPool segment (not a sealed memfd)")
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
    if found is not None and not (<SharedBufferPool>found)._closed:
        return found
    # (a pool this process closed: attached again if it can be, as attach()
    # does; else the closed one, which can still hold a block it receives)
    closed = found
    errors = []
    for pid, fd in locators:
        try:
            return _pool_for(_segment_open(pid, fd, id), name, locators)
        except (OSError, ValueError, OverflowError) as err:
            # (OverflowError: a forged locator's number; the next may do)
            errors.append(err)
    try:
        found = _attach(name)
    except (OSError, ValueError) as err:
        errors.append(err)
    else:
        if (<SharedBufferPool>found)._seg.id == id:
            return found
    if closed is not None:
        return closed
    for e in errors:
        if isinstance(e, (ValueError, PermissionError)) and not isinstance(e, _NotASegment):
            raise e       # found, but not ours to attach: say why
        if isinstance(e, OSError) and e.errno in (_errno.EMFILE, _errno.ENFILE, _errno.ENOMEM):
            raise e       # this process is out of fds or memory, not the pool gone
    last = errors[len(errors) - 1] if errors else None    # (wraparound is off)
    raise FileNotFoundError(
        f"cannot attach SharedBufferPool {name!r}: every process that could pass it "
        f"on has exited or closed it (last error: {last})")


cdef bytes _name_key_bytes(str name):
    """The name's key: sha256(name)[:20] (in the segment's header)."""
    return _hashlib.sha256(name.encode()).digest()[:20]


cdef str _name_key(str name):
    """The name's socket address under pool_ext/<uid>/: its key in hex, so
    that every valid name fits in a Unix socket address (108 bytes)."""
    return _name_key_bytes(name).hex()


cdef SharedBufferPool _attach(object name):
    """SharedBufferPool.attach(name)."""
    cdef int pid, fd
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    name = _check_name(name)
    # Always through the name's owner, even when this process has a pool of
    # that name: its segment's `named` flag stays set if its creator was
    # killed, and the name may belong to a new pool since (_pool_for then
    # finds this process's pool object for the segment found, if any).
    # the owner's two sockets, as /proc/net/unix lists them (an abstract
    # address shows as '@'): the name itself, and where its segment is
    prefix = f"@pool_ext/{_os.geteuid()}/{_name_key(name)}"
    owned = None        # the name socket's inode
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
            owned = fields[6]
        elif fields[7].startswith(prefix + "/"):
            p, _, f_ = fields[7][len(prefix) + 1:].partition(".")
            # one spelling per locator (no leading zeros): a planted one
            # cannot list itself first under another spelling
            if _canonical_number(p) and _canonical_number(f_):
                where.append((int(p), int(f_)))
    if owned is None:
        raise FileNotFoundError(_errno.ENOENT, f"no SharedBufferPool named {name!r} exists")
    error = None
    missing = ""
    key = _name_key_bytes(name)
    for pid, fd in where:
        # Only the name's owner binds its locators, but any process can bind
        # an abstract address: a locator whose process does not hold the
        # name socket is someone else's (it could lead to a dead creator's
        # segment, still marked named, held by a process that attached it).
        if not _holds_socket(pid, owned):
            continue
        try:
            seg = _segment_open(pid, fd, None)
        except _NotASegment as exc:
            # a locator left by a closed pool names an fd that now holds
            # something else: that pool is gone
            missing = f" (its locator leads to what is {exc})"
            continue
        except (OSError, ValueError) as exc:
            if isinstance(exc, (PermissionError, ValueError)):
                error = exc      # a segment, but not one to attach: say why
            continue
        if (<char *>(<_Segment>seg).l.header.name_key)[:20] != key:
            continue    # the fd is another pool's segment now
        if pool_load32(&(<_Segment>seg).l.header.named, POOL_ACQUIRE) != 1:
            continue    # a segment of an earlier pool of that name
        return _pool_for(seg, name, ((pid, fd),))
    if error is not None:
        raise error
    raise FileNotFoundError(_errno.ENOENT,
                            f"no SharedBufferPool named {name!r} exists{missing}")


cdef bint _canonical_number(str s):
    return s.isdigit() and len(s) < 10 and (s == "0" or s[0] != "0")


cdef bint _holds_socket(int pid, str inode):
    """Process pid has the socket of this inode open (False if it cannot
    be told: the process is gone, or /proc/<pid>/fd is not ours to read)."""
    target = f"socket:[{inode}]"
    try:
        with _os.scandir(f"/proc/{pid}/fd") as it:
            for entry in it:
                try:
                    if _os.readlink(entry.path) == target:
                        return True
                except OSError:
                    pass
    except OSError:
        return False
    return False


cdef object _pool_for(_Segment seg, str name, tuple locators):
    """This process's one pool object for seg: the one it has, or a new one."""
    cdef SharedBufferPool pool
    _shm_identity()              # fails here (no /proc), not in the first acquire
    with _shm_lock:
        found = _shm_pools.get(seg.id)
        if found is not None and not (<SharedBufferPool>found)._closed:
            return found         # (seg, a second mapping, goes)
        # (a pool this process closed stays closed for what it handed out;
        # attaching again gives a new one)
        pool = SharedBufferPool.__new__(SharedBufferPool)
        pool._adopt(seg, name, locators)
        _shm_pools[seg.id] = pool
        return pool
