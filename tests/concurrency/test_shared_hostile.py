"""SharedBufferPool against a segment written over by someone else, and
against crafted pickles and names.

The segment can be mapped by any process of the same user through
/proc/<pid>/fd/<fd> (the memfd's link reads "/memfd:pool_ext:<name>
(deleted)").  Whatever is written there (the header, the slot words, the
hint, the futex word), the pool must raise a clear error (PoolError,
PoolExhausted, ValueError) or recover, never crash, hang, or touch memory
outside its mapping.  Slot words: 0 FREE, 1 | pid << 2 | tag << 32 HELD,
2 | ticket << 2 IN TRANSIT, anything else corrupt (src/pool_shm.h).

The tests that write over a live segment run in a forked child (`isolated`):
a crash or a hang there fails the one test, not the test run.
"""
import faulthandler
import fcntl
import functools
import gc
import hashlib
import mmap
import os
import pickle
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import warnings

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("SharedBufferPool is Linux only", allow_module_level=True)

from helpers import run_script
from pool_ext import PoolError, PoolExhausted, SharedBuffer, SharedBufferPool
from pool_ext._pool import _shm_receive, _shm_take_sent, _shm_unpickle_pool

pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")

# the header (src/pool_shm.h, pool_shm_header_t); line 2 (the futex word
# `wake`, the sleeper flag and the waiter count) is written over as a whole,
# so these tests do not depend on where in it each word lies
MAGIC, VERSION, CAPACITY, BLOCK_SIZE, ALIGNMENT = 0, 8, 12, 16, 24
LAYOUT_VERSION = 2                          # POOL_SHM_VERSION (src/pool_shm.h)
STRIDE, BLOCKS_OFFSET, TOTAL_SIZE, ID = 32, 40, 48, 56
WAKE_LINE, HINT, HUNGRY_UNTIL = range(128, 192, 4), 192, 200
HINT_LINE = range(192, 256, 4)            # the hint, and the waiters' no-barging claim
HANDOUTS, RELEASES, RECLAIMED, NAMED = 256, 264, 272, 280
WORDS = 320
POOL_MAGIC = 0x314D48534C4F4F50
SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL


def unique(tag):
    return f"h-{tag}-{os.getpid()}-{os.urandom(4).hex()}"


def segment_fd(name, pid="self"):
    """The fd of the memfd of pool `name` in process pid."""
    want = f"/memfd:pool_ext:{name} (deleted)"
    for entry in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{entry}") == want:
                return int(entry)
        except OSError:
            continue
    raise AssertionError(f"no memfd {want!r} in /proc/{pid}/fd")


class Raw:
    """A second mapping of a pool's segment: read and write its words."""

    def __init__(self, pool):
        fd = segment_fd(pool.name)
        self.map = mmap.mmap(fd, os.fstat(fd).st_size)
        self.capacity = pool.capacity

    def get(self, offset, fmt="<Q"):
        return struct.unpack_from(fmt, self.map, offset)[0]

    def put(self, offset, value, fmt="<Q"):
        struct.pack_into(fmt, self.map, offset, value)

    def word(self, i):
        return self.get(WORDS + 8 * i)

    def set_word(self, i, value):
        self.put(WORDS + 8 * i, value)

    def close(self):
        self.map.close()


def held_word(pid, tag):
    return 1 | pid << 2 | (tag & 0xFFFFFFFF) << 32


def transit_word(ticket):
    return 2 | ticket << 2


def start_time(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[19])


def dead_pid():
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def isolated(timeout=30, dump_on_crash=True):
    """Runs the test in a forked child; its failure, crash (a signal) or hang
    (timeout seconds) fails the test here.  dump_on_crash=False: no
    faulthandler traceback on the terminal (for a crash the test expects)."""
    def wrap(test):
        @functools.wraps(test)
        def run(*args, **kwargs):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:                           # the child: never returns
                code = 1
                try:
                    os.close(r)
                    if not dump_on_crash:
                        faulthandler.disable()
                    test(*args, **kwargs)
                    code = 0
                except BaseException:
                    os.write(w, traceback.format_exc().encode()[-60000:])
                finally:
                    os._exit(code)
            os.close(w)
            report, deadline = b"", time.monotonic() + timeout
            try:
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0 or not select.select([r], [], [], left)[0]:
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                        pytest.fail(f"hung for {timeout} s:\n{report.decode()}")
                    chunk = os.read(r, 65536)
                    if not chunk:
                        break
                    report += chunk
                _, status = os.waitpid(pid, 0)
            finally:
                os.close(r)
            if os.WIFSIGNALED(status):
                pytest.fail(f"crashed: {signal.Signals(os.WTERMSIG(status)).name}\n"
                            f"{report.decode()}")
            if os.WEXITSTATUS(status) != 0:
                pytest.fail(report.decode() or f"exit status {os.WEXITSTATUS(status)}",
                            pytrace=False)
        return run
    return wrap


# -- the slot words ------------------------------------------------------------------

@isolated()
def test_corrupt_word_reported_and_the_rest_still_lent():
    pool = SharedBufferPool(32, 4)
    raw = Raw(pool)
    for bad in (3, 7, 0xFFFFFFFFFFFFFFFF, 1 << 63 | 3):
        raw.set_word(2, bad)
        s = pool.stats()
        assert (s["corrupt"], s["free"]) == (1, 3), s
        with pytest.raises(PoolError, match=r"slot words \[2\]"):
            pool.reclaim()
        bufs = [pool.acquire(timeout=0) for _ in range(3)]
        assert sorted(b.index for b in bufs) == [0, 1, 3]
        assert pool.try_acquire() is None
        t0 = time.monotonic()
        with pytest.raises((PoolError, PoolExhausted)):
            pool.acquire(timeout=0.2)
        assert time.monotonic() - t0 < 2
        for b in bufs:
            b.release()
        assert raw.word(2) == bad                 # nobody "repaired" it
    raw.set_word(2, 0)
    assert pool.reclaim() == 0 and pool.stats()["free"] == 4
    raw.close()


@isolated()
def test_held_by_dead_or_garbage_pids_is_reclaimed():
    pool = SharedBufferPool(32, 8)
    raw = Raw(pool)
    me, parent = os.getpid(), os.getppid()
    gone = dead_pid()
    dead = [held_word(0, 0), held_word(2**30 - 1, 12345), held_word(gone, 1),
            # (tags match to a tick: a time namespace's offset may round either
            # way; a pid comes back long after 10 ms, so 2 ticks is another start)
            held_word(me, start_time(me) + 2),           # our pid, an earlier process's tag
            held_word(1, start_time(1) + 2)]             # a live pid, another start
    alive = [held_word(1, start_time(1)), held_word(parent, start_time(parent))]
    for i, w in enumerate(dead + alive):
        raw.set_word(i, w)
    s = pool.stats()
    assert s["in_use"] == 7 and s["corrupt"] == 0
    assert s["holders"][2**30 - 1] == 1 and s["holders"][1] == 2
    assert pool.reclaim() == len(dead)
    s = pool.stats()
    assert s["reclaimed"] == len(dead) and s["holders"] == {1: 1, parent: 1}, s
    assert [raw.word(i) for i in range(5, 7)] == alive     # live holders keep theirs
    assert pool.reclaim() == 0
    bufs = [pool.acquire(timeout=0) for _ in range(6)]
    assert sorted(b.index for b in bufs) == [0, 1, 2, 3, 4, 7]
    for b in bufs:
        b.release()
    raw.close()


@isolated()
def test_transit_words_with_random_tickets():
    pool = SharedBufferPool(32, 4)
    raw = Raw(pool)
    tickets = [random.getrandbits(62) for _ in range(3)]
    for i, t in enumerate(tickets):
        raw.set_word(i, transit_word(t))
    assert pool.stats()["in_transit"] == 3
    assert pool.reclaim() == 0                         # a pickle might still be loaded
    for bad in (tickets[0] ^ 1, 0, (1 << 62) - 1):
        with pytest.raises(PoolError):
            _shm_receive(pool, 0, bad, None)
    assert raw.word(0) == transit_word(tickets[0])
    got = _shm_receive(pool, 0, tickets[0], None)      # the right ticket takes it
    assert type(got) is SharedBuffer and got.index == 0
    extra = pool.acquire(timeout=0)                    # the one free slot
    assert extra.index == 3
    t0 = time.monotonic()
    with pytest.raises(PoolExhausted):
        pool.acquire(timeout=0.3)
    assert time.monotonic() - t0 < 2
    assert pool.reclaim(in_transit=True) == 2
    got.release()
    extra.release()
    assert pool.stats()["free"] == 4
    raw.close()


@isolated()
def test_a_held_word_changed_under_its_holder():
    pool = SharedBufferPool(32, 3)
    raw = Raw(pool)
    a, b, c = pool.acquire(), pool.acquire(), pool.acquire()
    raw.set_word(a.index, 0)                           # freed behind our back
    with pytest.raises(PoolError, match="no longer held"):
        a.release()
    assert a.released
    other = pool.acquire(timeout=0)                    # and lent again
    assert other.index == a.index
    raw.set_word(b.index, held_word(dead_pid(), 7))    # "held" by a dead process
    with pytest.raises(PoolError):
        b.release()
    assert pool.reclaim() == 1
    mv = memoryview(c)
    mine = raw.word(c.index)
    raw.set_word(c.index, 5)                           # corrupt while exported
    with pytest.raises(PoolError, match="no longer held"):
        c.release()
    assert c.released                                  # dead: nothing it does later gives back
    raw.set_word(c.index, mine)                        # (not even if the word comes back)
    mv.release()
    assert raw.word(c.index) == mine
    raw.set_word(c.index, 0)
    d = pool.acquire(timeout=0)
    sent = pickle.dumps(d)
    raw.set_word(d.index, transit_word(12345))         # the ticket changed in transit
    with pytest.raises(PoolError):
        pickle.loads(sent)
    raw.set_word(d.index, 0)
    other.release()
    assert pool.stats()["free"] == 3
    raw.close()


@isolated()
def test_a_corrupt_word_does_not_end_a_wait_for_the_others():
    # the reclaim an acquire runs before and while it waits reports nothing:
    # only an explicit reclaim() raises for a corrupt word
    pool = SharedBufferPool(32, 2)
    raw = Raw(pool)
    raw.set_word(1, 3)
    held = pool.acquire(timeout=0)
    threading.Timer(0.3, held.release).start()
    t0 = time.monotonic()
    pool.acquire(timeout=10).release()
    assert 0.25 < time.monotonic() - t0 < 5
    with pytest.raises(PoolError, match=r"slot words \[1\]"):
        pool.reclaim()
    raw.set_word(1, 0)
    raw.close()


@isolated()
def test_all_words_corrupt_a_waiting_acquire_ends():
    pool = SharedBufferPool(32, 4)
    raw = Raw(pool)
    for i in range(4):
        raw.set_word(i, 0xDEADBEEFDEADBEEF)
    assert pool.try_acquire() is None and pool.stats()["corrupt"] == 4
    for timeout in (0, 0.3, 1.5):                      # 1.5: past the waiter's second reclaim
        t0 = time.monotonic()
        with pytest.raises((PoolError, PoolExhausted)):
            pool.acquire(timeout=timeout)
        assert time.monotonic() - t0 < timeout + 1.5
    assert pool.stats()["waiters"] == 0
    raw.close()


@isolated()
def test_all_words_in_transit_a_waiting_acquire_times_out():
    pool = SharedBufferPool(32, 3)
    raw = Raw(pool)
    for i in range(3):
        raw.set_word(i, transit_word(random.getrandbits(62)))
    t0 = time.monotonic()
    with pytest.raises(PoolExhausted, match="3 in transit"):
        pool.acquire(timeout=0.3)
    assert 0.29 <= time.monotonic() - t0 < 2
    raw.close()


@isolated()
def test_all_words_held_by_the_dead_acquire_reclaims_at_once():
    pool = SharedBufferPool(32, 3)
    raw = Raw(pool)
    gone = dead_pid()
    for i in range(3):
        raw.set_word(i, held_word(gone, i))
    t0 = time.monotonic()
    buf = pool.acquire(timeout=10)
    assert time.monotonic() - t0 < 2
    assert pool.stats()["reclaimed"] == 3
    buf.release()
    raw.close()


# -- the hint, the futex word, the counters ----------------------------------------------

@isolated()
def test_hint_out_of_range():
    pool = SharedBufferPool(32, 5)
    raw = Raw(pool)
    for hint in (5, 6, 0xFFFFFFFF, 0x80000000, 123456789):
        raw.put(HINT, hint, "<I")
        bufs = [pool.acquire(timeout=0) for _ in range(5)]
        assert sorted(b.index for b in bufs) == list(range(5))
        assert bufs[0].index == hint % 5                 # where the scan starts
        assert pool.try_acquire() is None
        for b in bufs:
            b.release()
    raw.close()


def scribble_wake_line(raw, value):
    for off in WAKE_LINE:
        raw.put(off, value, "<I")


@isolated()
def test_futex_word_and_waiter_count_scribbled():
    pool = SharedBufferPool(32, 1)
    raw = Raw(pool)
    for value in (0xFFFFFFFF, 0, 12345, 1):              # 0: a lost wake-up
        scribble_wake_line(raw, 0)                       # nobody waits now
        held = pool.acquire()
        got = []
        t = threading.Thread(target=lambda: got.append(pool.acquire(timeout=10)))
        t.start()
        try:
            deadline = time.monotonic() + 5
            while pool.stats()["waiters"] < 1 and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(0.01)                             # asleep on the futex word
            scribble_wake_line(raw, value)
            t0 = time.monotonic()
            held.release()
            t.join(5)
            assert not t.is_alive() and len(got) == 1
            assert time.monotonic() - t0 < 1.0           # at worst one sleep slice
        finally:
            t.join(10)
        got[0].release()
    scribble_wake_line(raw, 0)
    # a futex word that never stops changing: the wait still ends on time
    held = pool.acquire()
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            raw.put(random.choice(WAKE_LINE), random.getrandbits(32), "<I")

    t = threading.Thread(target=churn)
    t.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(PoolExhausted):
            pool.acquire(timeout=0.3)
        assert time.monotonic() - t0 < 2
    finally:
        stop.set()
        t.join(10)
    held.release()
    raw.close()


@isolated()
def test_hungry_claim_scribbled_in_the_past_or_now():
    pool = SharedBufferPool(32, 2)
    raw = Raw(pool)
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    for until in (1, now, now + 50_000_000):
        raw.put(HUNGRY_UNTIL, until)
        t0 = time.monotonic()
        with pool.acquire(timeout=5):                  # at worst one sleep slice
            pass
        assert time.monotonic() - t0 < 1.0
    raw.close()


@isolated()
def test_hungry_claim_scribbled_far_ahead():
    pool = SharedBufferPool(32, 2)
    raw = Raw(pool)
    raw.put(HUNGRY_UNTIL, 2**64 - 1)
    for _ in range(3):
        with pool.acquire(timeout=5):
            pass
    deadline = time.monotonic() + 1.0                  # five times a claim's life
    buf = None
    while buf is None and time.monotonic() < deadline:
        buf = pool.try_acquire()
        time.sleep(0.01)
    assert buf is not None, "try_acquire() refuses a free block for ever"
    buf.release()
    raw.close()


@isolated()
def test_counters_scribbled():
    pool = SharedBufferPool(32, 2)
    raw = Raw(pool)
    for off in (HANDOUTS, RELEASES, RECLAIMED):
        raw.put(off, 2**64 - 1)
    with pool.acquire():
        pass
    s = pool.stats()
    assert (s["handouts"], s["releases"], s["reclaimed"]) == (0, 0, 2**64 - 1)   # wrapped
    assert s["free"] == 2
    raw.close()


@isolated()
def test_layout_scribbled_after_attach_is_never_read_again():
    pool = SharedBufferPool(100, 3)
    raw = Raw(pool)
    raw.put(CAPACITY, 0xFFFFFFFF, "<I")
    raw.put(BLOCK_SIZE, 2**40)
    raw.put(STRIDE, 2**40)
    raw.put(BLOCKS_OFFSET, 2**50)
    raw.put(TOTAL_SIZE, 1)
    assert (pool.capacity, pool.block_size) == (3, 100)
    bufs = [pool.acquire(timeout=0) for _ in range(3)]
    assert all(len(b) == 100 for b in bufs)
    for b in bufs:
        memoryview(b)[:] = b"x" * 100                  # inside the mapping
        b.release()
    assert pool.stats()["capacity"] == 3
    raw.close()


def test_scribbles_from_another_process(tmp_path):
    """The same, written by a second process through /proc/<pid>/fd/<fd>."""
    pool = SharedBufferPool(32, 4)
    fd = segment_fd(pool.name)
    proc = run_script(tmp_path, """
        import mmap, os, struct, sys
        pid, fd = sys.argv[1:3]
        f = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDWR)
        m = mmap.mmap(f, os.fstat(f).st_size)
        struct.pack_into("<QQQ", m, 320, 3, 1 | (2**30 - 2) << 2, 2 | 99 << 2)
        struct.pack_into("<I", m, 192, 0xFFFFFFFF)           # the hint
        m.close()
        os.close(f)
        print("DONE")
    """, os.getpid(), fd, timeout=30)
    assert proc.returncode == 0 and "DONE" in proc.stdout
    s = pool.stats()
    assert (s["corrupt"], s["in_use"], s["in_transit"], s["free"]) == (1, 1, 1, 1), s
    with pytest.raises(PoolError, match=r"\[0\]"):
        pool.reclaim()                                 # reclaims the garbage pid, then raises
    assert pool.stats()["free"] == 2
    bufs = [pool.acquire(timeout=0), pool.acquire(timeout=0)]
    assert sorted(b.index for b in bufs) == [1, 3]
    for b in bufs:
        b.release()
    raw = Raw(pool)
    raw.set_word(0, 0)
    assert pool.reclaim(in_transit=True) == 1
    assert pool.stats()["free"] == 4
    raw.close()
    pool.close()


FUZZ_SECONDS = 1.0


@isolated(timeout=60)
def test_fuzz_scribbler_process_against_busy_threads():
    """A second process writes random words over the slot words, the hint,
    the futex word, the waiter count and the counters while three threads
    acquire, release, pickle and reclaim: only the expected errors, and once
    the words are put back, every block can be had."""
    capacity = 8
    pool = SharedBufferPool(64, capacity)
    fd = segment_fd(pool.name)
    me = os.getpid()
    scribbler = os.fork()
    if scribbler == 0:
        try:
            f = os.open(f"/proc/{me}/fd/{fd}", os.O_RDWR)
            m = mmap.mmap(f, os.fstat(f).st_size)
            rng = random.Random(os.getpid())
            gone = dead_pid()
            forms = [lambda: 0, lambda: rng.getrandbits(64), lambda: 3,
                     lambda: held_word(gone, rng.getrandbits(32)),
                     lambda: held_word(rng.randrange(2**30), rng.getrandbits(32)),
                     lambda: transit_word(rng.getrandbits(62))]
            deadline = time.monotonic() + FUZZ_SECONDS
            while time.monotonic() < deadline:
                i = rng.randrange(capacity)
                struct.pack_into("<Q", m, WORDS + 8 * i, rng.choice(forms)())
                if rng.random() < 0.1:
                    off = rng.choice([*HINT_LINE, *WAKE_LINE])
                    struct.pack_into("<I", m, off, rng.getrandbits(32))
                if rng.random() < 0.05:
                    off = rng.choice([HANDOUTS, RELEASES, RECLAIMED])
                    struct.pack_into("<Q", m, off, rng.getrandbits(64))
        finally:
            os._exit(0)
    expected = (PoolError, PoolExhausted)
    unexpected, ops = [], [0]

    def busy(seed):
        rng = random.Random(seed)
        held = []
        deadline = time.monotonic() + FUZZ_SECONDS
        try:
            while time.monotonic() < deadline:
                op = rng.random()
                try:
                    if op < 0.35:
                        buf = pool.acquire(timeout=rng.choice([0, 0.01, 0.05]))
                        memoryview(buf)[:8] = b"busybusy"
                        held.append(buf)
                    elif op < 0.45:
                        buf = pool.try_acquire()
                        if buf is not None:
                            held.append(buf)
                    elif op < 0.75 and held:
                        held.pop(rng.randrange(len(held))).release()
                    elif op < 0.85 and held:
                        buf = held.pop()
                        held.append(pickle.loads(pickle.dumps(buf)))
                    elif op < 0.9:
                        pool.reclaim(in_transit=rng.random() < 0.5)
                    else:
                        s = pool.stats()
                        assert sum(s[k] for k in ("in_use", "in_transit", "free", "corrupt")) \
                            == capacity
                except expected:
                    pass
                ops[0] += 1
        except BaseException as exc:
            unexpected.append(repr(exc))
        for buf in held:
            try:
                buf.release()
            except expected:
                pass

    threads = [threading.Thread(target=busy, args=(k,)) for k in range(3)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(FUZZ_SECONDS + 20)
        assert not any(t.is_alive() for t in threads), "a thread hangs"
    finally:
        _, status = os.waitpid(scribbler, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert unexpected == [] and ops[0] > 100
    raw = Raw(pool)
    for i in range(capacity):
        raw.set_word(i, 0)
    scribble_wake_line(raw, 0)
    for off in HINT_LINE:
        raw.put(off, 0, "<I")
    bufs = [pool.acquire(timeout=0) for _ in range(capacity)]
    assert sorted(b.index for b in bufs) == list(range(capacity))
    for b in bufs:
        memoryview(b)[:] = bytes(64)
        b.release()
    raw.close()


# -- attaching to a bad segment ---------------------------------------------------------

ATTACH_SCRIPT = """
    import pickle, sys
    from pool_ext import SharedBufferPool
    name, path = sys.argv[1:3]
    for how, call in (("attach", lambda: SharedBufferPool.attach(name)),
                      ("unpickle", lambda: pickle.loads(open(path, "rb").read()))):
        try:
            pool = call()
        except Exception as exc:
            print(how, type(exc).__name__, exc, flush=True)
        else:
            print(how, "OK", pool.capacity, pool.block_size, flush=True)
"""


def attach_from_a_new_process(tmp_path, pool):
    """{"attach": (exception name or "OK", message), "unpickle": ...} seen by a
    new process attaching pool by its name and by unpickling it."""
    path = tmp_path / "pool.pickle"
    path.write_bytes(pickle.dumps(pool))
    proc = run_script(tmp_path, ATTACH_SCRIPT, pool.name, path, timeout=30)
    assert proc.returncode == 0, proc.stderr
    seen = {}
    for line in proc.stdout.splitlines():
        how, kind, *rest = line.split(" ", 2)
        seen[how] = (kind, " ".join(rest))
    return seen


def _plan(block_size, capacity, alignment, page=mmap.PAGESIZE):
    up = lambda x, to: (x + to - 1) // to * to                       # noqa: E731
    first = up(WORDS + 8 * capacity, max(alignment, page))
    stride = up(block_size, alignment)
    return stride, first, up(first + stride * capacity, page)


def scribble_header(raw, kind):
    if kind == "magic":
        raw.map[MAGIC:MAGIC + 8] = b"garbage!"
    elif kind == "version":
        raw.put(VERSION, LAYOUT_VERSION + 1, "<I")
    elif kind == "capacity":
        raw.put(CAPACITY, 600, "<I")                   # the other sizes disagree
    elif kind == "max-capacity":
        raw.put(CAPACITY, 2**24 + 1, "<I")
    elif kind == "alignment":
        raw.put(ALIGNMENT, 3)
    elif kind == "block_size":
        raw.put(BLOCK_SIZE, 0)
    elif kind == "truncated":                          # a layout that adds up, bigger than the file
        stride, first, total = _plan(64, 1000, 64)
        raw.put(CAPACITY, 1000, "<I")
        raw.put(STRIDE, stride)
        raw.put(BLOCKS_OFFSET, first)
        raw.put(TOTAL_SIZE, total)
    else:
        raise AssertionError(kind)


HEADER_SCRIBBLES = ["magic", "version", "capacity", "max-capacity", "alignment", "block_size",
                    "truncated"]


@pytest.mark.parametrize("kind", HEADER_SCRIBBLES)
def test_new_process_attaching_a_scribbled_header(tmp_path, kind):
    pool = SharedBufferPool(64, 4, name=unique(kind))
    raw = Raw(pool)
    try:
        assert attach_from_a_new_process(tmp_path, pool) == {"attach": ("OK", "4 64"),
                                                               "unpickle": ("OK", "4 64")}
        scribble_header(raw, kind)
        seen = attach_from_a_new_process(tmp_path, pool)
        assert seen["attach"][0] == "ValueError", seen
        assert "SharedBufferPool segment" in seen["attach"][1]
        # the pickle's way fails too, saying why
        assert seen["unpickle"][0] in ("ValueError", "FileNotFoundError"), seen
        assert seen["attach"][1] in seen["unpickle"][1]
        with pool.acquire(timeout=0) as buf:           # the creator goes on
            memoryview(buf)[:] = bytes(64)
    finally:
        raw.close()
        pool.close()


def test_unpickling_a_pool_of_another_version_is_a_value_error(tmp_path):
    pool = SharedBufferPool(64, 4, name=unique("ver"))
    raw = Raw(pool)
    try:
        scribble_header(raw, "version")
        seen = attach_from_a_new_process(tmp_path, pool)
        assert seen["unpickle"][0] == "ValueError", seen
    finally:
        raw.close()
        pool.close()


def test_named_flag_cleared_hides_the_pool(tmp_path):
    pool = SharedBufferPool(64, 2, name=unique("named"))
    raw = Raw(pool)
    try:
        assert raw.get(NAMED, "<I") == 1
        raw.put(NAMED, 0, "<I")
        seen = attach_from_a_new_process(tmp_path, pool)
        assert seen["attach"][0] == "FileNotFoundError", seen
        assert seen["unpickle"][0] == "OK", seen        # through the creator's fd
    finally:
        raw.close()
        pool.close()


# -- crafted pickles and payloads ---------------------------------------------------------

def test_attach_no_such_name():
    with pytest.raises(FileNotFoundError):
        SharedBufferPool.attach(unique("no-such-name"))
    with pytest.raises(FileNotFoundError):
        SharedBufferPool.attach("no-such-name")


def test_a_squatter_on_the_name(tmp_path):
    """Another program of this user listening on the pool's socket name."""
    name = unique("squat")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.bind(f"\0{socket_name(name)}")
        with pytest.raises(FileNotFoundError):
            SharedBufferPool.attach(name)              # it says where no segment is
        with pytest.raises(FileExistsError):
            SharedBufferPool(8, 1, name=name)
        # it says where a memfd is that is no pool: not sealed
        fake = os.memfd_create(f"pool_ext:{name}")
        where = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            os.ftruncate(fake, 8192)
            where.bind(f"\0{socket_name(name)}/{os.getpid()}.{fake}")
            # (a locator left by a closed pool can name a reused fd: not found)
            with pytest.raises(FileNotFoundError, match="not a sealed memfd"):
                SharedBufferPool.attach(name)
        finally:
            where.close()
            os.close(fake)
    finally:
        s.close()
    SharedBufferPool(8, 1, name=name).close()          # free once the squatter is gone


def sealed_memfd(data, size=8192):
    fd = os.memfd_create("pool_ext:crafted", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
    os.ftruncate(fd, size)
    os.pwrite(fd, data, 0)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
    return fd


def crafted_header(block_size, capacity, alignment=64, ident=b"\x11" * 16, **override):
    stride, first, total = _plan(block_size, capacity, alignment)
    fields = dict(magic=POOL_MAGIC, version=LAYOUT_VERSION, capacity=capacity, block_size=block_size,
                  alignment=alignment, stride=stride, blocks_offset=first, total=total)
    fields.update(override)
    head = struct.pack("<QIIQQQQQ16s", fields["magic"], fields["version"], fields["capacity"],
                       fields["block_size"], fields["alignment"], fields["stride"],
                       fields["blocks_offset"], fields["total"], ident)
    return head, total


def test_unpickle_pool_with_bad_id_or_locators(tmp_path):
    pool = SharedBufferPool(64, 2, name=unique("loc"))
    fd = segment_fd(pool.name)
    me = os.getpid()
    r, w = os.pipe()
    plain = open(tmp_path / "plain", "w+b")
    plain.write(b"x" * 8192)
    plain.flush()
    unsealed = os.memfd_create("pool_ext:unsealed")
    os.ftruncate(unsealed, 8192)
    short = sealed_memfd(b"", size=100)
    garbage = sealed_memfd(os.urandom(320))
    wrong_version = sealed_memfd(crafted_header(64, 2, version=9)[0])
    too_big = sealed_memfd(crafted_header(64, 100_000)[0])           # ETRUNC
    try:
        bad_id = os.urandom(16)
        # the right segment, another pool's id
        with pytest.raises(FileNotFoundError, match="another pool's"):
            _shm_unpickle_pool(bad_id, pool.name, ((me, fd),))
        for locator_fd in (r, w, plain.fileno(), unsealed, short, garbage, wrong_version, too_big,
                           10**6):
            # (FileNotFoundError now, which names the last error; ValueError would say it too)
            with pytest.raises((FileNotFoundError, ValueError)):
                _shm_unpickle_pool(bad_id, unique("gone"), ((me, locator_fd),))
        for locators in (((dead_pid(), fd),), ((2**31 - 1, fd),), ((0, 0),), ((-1, -1),), (),
                         ((2**40, 1),), ((2**40, 1), (1, 2**70))):   # (too big: the next is tried)
            with pytest.raises(FileNotFoundError):
                _shm_unpickle_pool(bad_id, unique("gone"), locators)
        for locators in ((("a", "b"),), ((1,),), ("xy",), None):
            with pytest.raises((TypeError, ValueError, OverflowError)):
                _shm_unpickle_pool(bad_id, unique("gone"), locators)
        for name in (None, 5):
            with pytest.raises(TypeError):
                _shm_unpickle_pool(bad_id, name, ())
        with pytest.raises(TypeError):
            _shm_unpickle_pool("not bytes", pool.name, ())
    finally:
        for f in (r, w, unsealed, short, garbage, wrong_version, too_big):
            os.close(f)
        plain.close()
        pool.close()


def test_unpickle_pool_payload_in_a_new_process(tmp_path):
    """A pool pickle edited to another id, or to dead locators and a gone
    name: a new process gets FileNotFoundError, not a crash."""
    pool = SharedBufferPool(64, 2, name=unique("payload"))
    try:
        func, (ident, name, locators) = pool.__reduce__()
        payloads = {
            "bad-id": (func, (os.urandom(16), name, locators)),
            "dead": (func, (ident, unique("gone"), ((dead_pid(), 3),))),
            "fd": (func, (ident, unique("gone"), ((os.getpid(), 10**6),))),
            "by-name": (func, (ident, name, ((dead_pid(), 3),))),    # found by its name
        }
        for label, reduced in payloads.items():
            class Payload:
                def __reduce__(self, reduced=reduced):
                    return reduced
            (tmp_path / f"{label}.pickle").write_bytes(pickle.dumps(Payload()))
        proc = run_script(tmp_path, """
            import pickle, sys
            for label in sys.argv[1:]:
                try:
                    pickle.loads(open(label + ".pickle", "rb").read())
                except Exception as exc:
                    print(label, type(exc).__name__, flush=True)
                else:
                    print(label, "OK", flush=True)
        """, *payloads, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert sorted(proc.stdout.split("\n")[:-1]) == sorted(
            f"{label} {'OK' if label == 'by-name' else 'FileNotFoundError'}" for label in payloads)
    finally:
        pool.close()


def test_crafted_segment_attaches_as_a_pool():
    """A segment built by hand to the layout is a pool like any other (the
    format is self-describing); its garbage words are reported as such."""
    ident = os.urandom(16)
    head, total = crafted_header(48, 3, ident=ident)
    words = struct.pack("<QQQ", 0, 7, held_word(dead_pid(), 1))
    fd = sealed_memfd(head + bytes(WORDS - len(head)) + words, size=total)
    try:
        pool = _shm_unpickle_pool(ident, unique("crafted"), ((os.getpid(), fd),))
        assert (pool.capacity, pool.block_size, pool.alignment) == (3, 48, 64)
        s = pool.stats()
        assert (s["free"], s["corrupt"], s["in_use"]) == (1, 1, 1), s
        with pytest.raises(PoolError):
            pool.reclaim()
        bufs = [pool.acquire(timeout=0), pool.acquire(timeout=0)]
        assert sorted(b.index for b in bufs) == [0, 2] and len(bufs[0]) == 48
        for b in bufs:
            b.release()
        pool.close()
    finally:
        os.close(fd)


def test_crafted_receive_out_of_range_or_bad_ticket():
    pool = SharedBufferPool(64, 3)
    buf = pool.acquire()
    func, (ident, name, where, index, ticket, spec) = buf.__reduce__()   # sends it
    assert func is _shm_take_sent and spec is None
    first = func(ident, name, where, index, ticket, None)    # received here
    assert first.index == index
    first.release()
    buf = pool.acquire()
    func, (ident, name, where, index, ticket, spec) = buf.__reduce__()
    for bad_index in (3, -1, 2**32, 2**64, "0", 0.0, None, [index]):
        with pytest.raises(PoolError, match="does not have"):
            _shm_receive(pool, bad_index, ticket, None)
    for bad_ticket in (-1, 2**62, 2**64, "x", None, 1.5):
        with pytest.raises(PoolError, match="malformed"):
            _shm_receive(pool, index, bad_ticket, None)
    for wrong in (ticket ^ 1, ticket ^ (1 << 61), 0):
        with pytest.raises(PoolError, match="already received"):
            _shm_receive(pool, index, wrong, None)
    free = (index + 1) % 3
    with pytest.raises(PoolError):
        _shm_receive(pool, free, 0, None)              # a free slot is nobody's pickle
    assert pool.stats()["in_transit"] == 1
    got = _shm_receive(pool, index, ticket, None)
    with pytest.raises(PoolError):
        _shm_receive(pool, index, ticket, None)        # replayed
    got.release()
    for bad_pool in ("pool", 5, object()):
        with pytest.raises(TypeError):
            _shm_receive(bad_pool, index, ticket, None)
    assert pool.stats()["free"] == 3
    pool.close()


@isolated(dump_on_crash=False)
def test_crafted_receive_with_no_pool():
    with pytest.raises(TypeError):
        pickle.loads(b"\x80\x04\x95.\x00\x00\x00\x00\x00\x00\x00\x8c\x0epool_ext._pool\x94\x8c"
                     b"\x0c_shm_receive\x94\x93\x94(NK\x00K\x01Nt\x94R\x94.")


def test_crafted_receive_bad_array_spec_gives_the_block_back(np):
    pool = SharedBufferPool(64, 1)
    for spec in ((np.dtype("f8"), (9,), "C"), (np.dtype(object), (2,), "C"),
                 (np.dtype("f8"), (-1,), "C"), (np.dtype("f8"), (2,), "Z")):
        buf = pool.acquire()
        _, (_, _, _, index, ticket, _) = buf.__reduce__()
        with pytest.raises((PoolError, TypeError, ValueError)):
            _shm_receive(pool, index, ticket, spec)
        s = pool.stats()
        assert (s["free"], s["in_transit"]) == (1, 0), s       # received, then given back
    pool.close()


def test_crafted_receive_malformed_array_spec_no_resource_warning():
    pool = SharedBufferPool(64, 1)
    try:
        for spec in ("xx", 5, (1, 2)):
            buf = pool.acquire()
            _, (_, _, _, index, ticket, _) = buf.__reduce__()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with pytest.raises((TypeError, ValueError)):
                    _shm_receive(pool, index, ticket, spec)
                gc.collect()
            assert pool.stats()["free"] == 1
            assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    finally:
        pool.close()


def test_attaching_again_and_again_leaks_no_fd_or_mapping(tmp_path):
    pool = SharedBufferPool(64, 1, name=unique("again"))
    try:
        proc = run_script(tmp_path, """
            import gc, os, sys
            from pool_ext import SharedBufferPool

            def count():
                with open("/proc/self/maps") as f:
                    return len(os.listdir("/proc/self/fd")), sum("pool_ext" in x for x in f)

            first = SharedBufferPool.attach(sys.argv[1])
            before = count()
            for _ in range(300):
                assert SharedBufferPool.attach(sys.argv[1]) is first
            gc.collect()
            assert count() == before, (before, count())
            print("OK", before)
        """, pool.name, timeout=60)
        assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr
    finally:
        pool.reclaim()                                 # drains the name's socket
        pool.close()


# -- the name's socket backlog ------------------------------------------------------------

def test_many_attaches_by_name(tmp_path):
    pool = SharedBufferPool(64, 1, name=unique("backlog"))
    try:
        proc = run_script(tmp_path, """
            import sys
            from pool_ext import SharedBufferPool
            for i in range(5000):
                pool = SharedBufferPool.attach(sys.argv[1])
            print("OK", pool.capacity)
        """, pool.name, timeout=60)
        assert proc.returncode == 0 and "OK 1" in proc.stdout, proc.stderr[-2000:]
    finally:
        pool.close()


# -- nothing left behind ------------------------------------------------------------------

def test_attach_opens_only_the_segment_of_that_name(tmp_path):
    """A locator left by a closed pool (or planted) can name an fd that is
    now another pool's segment: attach(name) must not return that pool (it
    did, 3 times in 2,300 attaches racing close-and-create)."""
    other = SharedBufferPool(64, 1, name=unique("other"))
    name = unique("stale")
    owner = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    where = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        owner.bind(f"\0{socket_name(name)}")
        where.bind(f"\0{socket_name(name)}/{os.getpid()}.{segment_fd(other.name)}")
        proc = run_script(tmp_path, """
            import sys
            from pool_ext import SharedBufferPool
            try:
                print("attached", SharedBufferPool.attach(sys.argv[1]).name)
            except Exception as exc:
                print(type(exc).__name__, exc)
        """, name, timeout=30)
        assert proc.stdout.startswith("FileNotFoundError"), proc.stdout
    finally:
        owner.close()
        where.close()
        other.close()


def socket_name(name):
    """The pool's name as its owner's abstract socket has it (a hash, so
    that any valid name fits a socket address)."""
    return f"pool_ext/{os.geteuid()}/{hashlib.sha256(name.encode()).hexdigest()[:40]}"


def pool_entries(name):
    """What names `name` anywhere: /dev/shm files, abstract sockets, memfds
    mapped or open in any process."""
    found = [f"/dev/shm/{e}" for e in os.listdir("/dev/shm") if "pool_ext" in e or name in e]
    with open("/proc/net/unix") as f:
        found += [line.split()[-1] for line in f if f"@{socket_name(name)}" in line]
    label = f"memfd:pool_ext:{name} "
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/maps") as f:
                if any(label in line for line in f):
                    found.append(f"mapped in {pid}")
            for entry in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{entry}").startswith(f"/{label}"):
                    found.append(f"open in {pid}")
        except OSError:
            continue                                   # gone meanwhile
    return found


def test_nothing_in_dev_shm_and_nothing_left_in_this_process():
    name = unique("leak")
    pool = SharedBufferPool(4096, 2, name=name)
    buf = pool.acquire()
    mv = memoryview(buf)
    here = pool_entries(name)
    assert not [e for e in here if e.startswith("/dev/shm")], here
    assert f"@{socket_name(name)}" in here
    assert f"mapped in {os.getpid()}" in here and f"open in {os.getpid()}" in here
    pool.close()
    assert not [e for e in pool_entries(name) if e.startswith("@")]   # the name goes at close
    buf.release()
    del pool, buf
    gc.collect()
    assert pool_entries(name) != []                   # the export keeps the mapping
    mv.release()
    del mv
    gc.collect()
    assert pool_entries(name) == []


def test_nothing_left_after_every_process_exits(tmp_path):
    name = unique("exit")
    proc = run_script(tmp_path, """
        import multiprocessing, os, sys
        from pool_ext import SharedBufferPool

        def child(pool, q):
            buf = pool.acquire()
            memoryview(buf)[:2] = b"ok"
            q.put(buf)

        if __name__ == "__main__":
            pool = SharedBufferPool(4096, 4, name=sys.argv[1])
            ctx = multiprocessing.get_context("spawn")
            q = ctx.Queue()
            p = ctx.Process(target=child, args=(pool, q))
            p.start()
            got = q.get(timeout=30)
            p.join(30)
            assert p.exitcode == 0 and bytes(got)[:2] == b"ok"
            assert not [e for e in os.listdir("/dev/shm") if "pool_ext" in e]
            print("RAN", flush=True)
            # exits holding a block, pool not closed: the kernel cleans up
    """, name, timeout=60)
    assert proc.returncode == 0 and "RAN" in proc.stdout, proc.stderr
    assert pool_entries(name) == []
    with pytest.raises(FileNotFoundError):
        SharedBufferPool.attach(name)


def test_attach_passes_over_locators_the_names_owner_did_not_bind(tmp_path):
    """Any process can bind an abstract socket address.  One that planted
    locators (several spellings of one, with leading zeros) leading to a
    segment of a killed creator, which a live process still holds and which
    still says "named", made attach() return that dead pool instead of the
    name's live one.  A locator counts only if its process holds the name
    socket, and only in its one spelling."""
    name = f"planted-{os.getpid()}"
    key = hashlib.sha256(name.encode()).digest()[:20].hex()

    def child(code):
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                text=True, cwd=tmp_path)

    procs = []
    try:
        c1 = child(f"import pickle, time\nfrom pool_ext import SharedBufferPool\n"
                   f"p = SharedBufferPool(4096, 2, name={name!r})\n"
                   f"print(pickle.dumps(p).hex(), flush=True)\ntime.sleep(120)\n")
        procs.append(c1)
        sent = c1.stdout.readline().strip()
        holder = child(f"import pickle, time\nq = pickle.loads(bytes.fromhex({sent!r}))\n"
                       f"pid, fd = q.__reduce__()[1][2][0]\nprint(pid, fd, flush=True)\n"
                       f"time.sleep(120)\n")
        procs.append(holder)
        hpid, hfd = holder.stdout.readline().split()
        os.kill(c1.pid, signal.SIGKILL)
        c1.wait()
        c2 = child(f"import time\nfrom pool_ext import SharedBufferPool\n"
                   f"p = SharedBufferPool(4096, 3, name={name!r})\n"
                   f"print('made', flush=True)\ntime.sleep(120)\n")
        procs.append(c2)
        assert c2.stdout.readline().strip() == "made"
        planted = []
        for zp in range(4):
            for zf in range(4):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                s.bind(f"\0pool_ext/{os.geteuid()}/{key}/{'0' * zp}{hpid}.{'0' * zf}{hfd}")
                planted.append(s)
        try:
            for _ in range(3):
                pool = SharedBufferPool.attach(name)
                assert pool.capacity == 3          # the live pool (the dead one has 2)
                pool.close()
        finally:
            for s in planted:
                s.close()
    finally:
        for p in procs:
            p.kill()
            p.wait()
            p.stdout.close()
