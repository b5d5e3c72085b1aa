"""Helpers shared by the test files: `from helpers import Thing, ...`.

Found through `pythonpath = ["tests"]` in pyproject.toml's pytest settings,
both in the source tree and in the wheel tests' copy of tests/.  There is no
tests/__init__.py on purpose: with one, pytest would put the repository root
on sys.path, and the checkout's pool_ext/ (no compiled module in it) would
shadow the installed package.

The environment knobs (POOL_STRESS_OPS, POOL_TEST_SEED, ...) are read in
conftest.py, not here: see its `knobs` fixture.
"""
import inspect
import subprocess
import sys
import textwrap
import time
from pathlib import Path

try:
    import resource
except ImportError:   # Windows: no RSS figure
    resource = None

#: The directory that holds tests/: the source checkout, or the temporary
#: directory the wheel tests run in (tests/ and pyproject.toml only).
ROOT = Path(__file__).resolve().parent.parent

#: True in a source checkout (the C sources are there), False in the wheel tests.
SOURCE_TREE = (ROOT / "src").is_dir() and (ROOT / "tests" / "c").is_dir()


class Thing:
    """A pooled object: a plain class instance, with room for what the hook
    tests set on it (`dirty`, `broken`, `n`)."""

    def __init__(self):
        self.dirty = False
        self.n = 0

    def __repr__(self):       # stable test ids, not an address
        return "Thing()"


class Boom(Exception):
    """Raised on purpose by a hook or inside a `with` block."""


def rss():
    """Resident memory of this process in bytes: /proc/self/statm on Linux
    (also sees C allocations tracemalloc cannot), else peak RSS; 0 on Windows."""
    if resource is None:
        return 0
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:   # not Linux: peak RSS is the best we have (KiB on Linux/BSD)
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r if sys.platform == "darwin" else r * 1024


def script_command(tmp_path, source, *args, name="script.py"):
    """Writes the dedented source to tmp_path/name; returns the command line
    that runs it in a fresh interpreter (with faulthandler on)."""
    script = Path(tmp_path) / name
    script.write_text(textwrap.dedent(source))
    return [sys.executable, "-X", "faulthandler", str(script), *map(str, args)]


def run_script(tmp_path, source, *args, timeout=60, **kw):
    """Runs source in a fresh interpreter, in tmp_path (not the source tree,
    so the installed pool_ext is imported); echoes its output (pytest shows it
    on a failure) and returns the CompletedProcess.  Anything that could take
    the interpreter down runs this way: a crash or a hang fails one test, not
    the test run."""
    proc = subprocess.run(script_command(tmp_path, source, *args), capture_output=True,
                          text=True, timeout=timeout, cwd=str(tmp_path), **kw)
    sys.stdout.write(proc.stdout)
    sys.stdout.write(proc.stderr)
    return proc


def wait_for_waiters(pool, n=1, timeout=10.0):
    """Sleeps until at least n threads wait in pool.acquire(), at most
    timeout seconds; returns whether they do."""
    deadline = time.monotonic() + timeout
    while pool.stats()["waiting"] < n:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def line_of(marker):
    """The line number of the caller's source line that holds `marker` (a
    comment such as "# acquired-here"), for tests that check the line a
    message points at."""
    frame = inspect.currentframe().f_back
    lines, start = inspect.getsourcelines(frame.f_code)
    for k, text in enumerate(lines):
        if marker in text and "line_of(" not in text:
            return start + k
    raise AssertionError(f"no line with {marker!r} in {frame.f_code.co_name}")


# -- asyncio ------------------------------------------------------------------

def loop_factories():
    """The event loops the async tests run under: asyncio's own, and uvloop
    where it is installed (the test extra brings it, but for Windows)."""
    import asyncio
    factories = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop
    except ImportError:
        pass
    else:
        factories["uvloop"] = uvloop.new_event_loop
    return factories


def run_async(coro, loop_kind="asyncio"):
    """Runs coro to completion on a new loop of the given kind; closes it."""
    import asyncio
    loop = loop_factories()[loop_kind]()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        # as asyncio.run: tasks left over are cancelled and run to their end
        # first (a test that failed half-way leaves some), then the loop closes
        leftover = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in leftover:
            t.cancel()
        if leftover:
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
        asyncio.set_event_loop(None)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
