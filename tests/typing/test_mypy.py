"""mypy --strict on code written against the stubs, as a user's code would be:

- every ```python block of README.md, read from README.md when the tests are
  collected (never copied here), under the oldest Python the package
  supports (3.9) and under this interpreter's version;
- a PooledBuffer used where the standard library wants a buffer
  (memoryview(buf), f.readinto(buf)), under every Python version the
  package supports that has no __buffer__ protocol in the language
  (3.9-3.11), and 3.12.

A version this mypy cannot target (mypy 2 dropped 3.9) is skipped, saying so.
"""
import re
import subprocess
import sys

import pytest

from helpers import ROOT

pytest.importorskip("mypy", reason="mypy is not installed (pip install .[test] brings it)")

README = ROOT / "README.md"
THIS_PYTHON = "%d.%d" % sys.version_info[:2]


def readme_python_blocks():
    """[(line of the opening fence, source)] of README.md's ```python blocks."""
    if not README.is_file():
        return []
    blocks, current, start, indent = [], None, 0, ""
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        if current is None:
            m = re.match(r"^(\s*)```python\s*$", line)
            if m:
                current, start, indent = [], number, m.group(1)
        elif line.strip().startswith("```"):
            blocks.append((start, "\n".join(current) + "\n"))
            current = None
        else:
            current.append(line[len(indent):] if line.startswith(indent) else line)
    return blocks


BLOCKS = [pytest.param(line, source, id=f"README.md:{line}")
          for line, source in readme_python_blocks()] or [pytest.param(
    0, "", id="README.md", marks=pytest.mark.skip(
        reason="no README.md with ```python blocks here (the wheel tests copy tests/ only)"))]


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory):
    """One mypy cache directory per --python-version, shared by the session:
    the standard library and numpy stubs are analysed once per version."""
    caches = {}

    def cache_for(python_version):
        if python_version not in caches:
            caches[python_version] = tmp_path_factory.mktemp(f"mypy-cache-{python_version}")
        return caches[python_version]

    return cache_for


def mypy_strict(tmp_path, mypy_cache, python_version, name, source):
    """Writes source to tmp_path/name and runs mypy --strict on it for
    python_version; returns (exit code, output).  Skips the test if this
    mypy cannot target python_version."""
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    # cwd: tmp_path, so that mypy finds the installed pool_ext (its stubs and
    # py.typed), never the source tree's pool_ext/.
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--python-version", python_version,
         "--cache-dir", str(mypy_cache(python_version)), "--no-color-output",
         "--show-error-codes", name],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=600)
    if proc.returncode == 2 and "not supported" in proc.stderr:
        reason = proc.stderr.strip().splitlines()[-1]
        pytest.skip(f"this mypy cannot target Python {python_version} ({reason})")
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("python_version", sorted({"3.9", THIS_PYTHON}))
@pytest.mark.parametrize("line,source", BLOCKS)
def test_readme_example_type_checks(tmp_path, mypy_cache, line, source, python_version):
    code, output = mypy_strict(tmp_path, mypy_cache, python_version,
                               f"readme_line_{line}.py", source)
    assert code == 0, f"README.md line {line}, mypy --strict --python-version " \
                      f"{python_version}:\n{output}"


BUFFER_USER = '''\
import io

from pool_ext import BufferPool, PooledBuffer


def fill(buf: PooledBuffer, path: str) -> int:
    with open(path, "rb") as f:
        n = f.readinto(buf)
    view = memoryview(buf)
    view.release()
    return n + io.BytesIO(b"more").readinto(buf)


bufs = BufferPool(4096, capacity=2)
with bufs.acquire() as buf:
    fill(buf, __file__)
'''


@pytest.mark.parametrize("python_version", ["3.9", "3.10", "3.11", "3.12"])
def test_pooledbuffer_is_a_buffer_to_mypy(tmp_path, mypy_cache, python_version):
    """memoryview(buf) and f.readinto(buf) type-check on every Python version,
    not only where the stub's __buffer__ is declared (3.12+)."""
    code, output = mypy_strict(tmp_path, mypy_cache, python_version, "buffer_user.py",
                               BUFFER_USER)
    assert code == 0, f"mypy --strict --python-version {python_version}:\n{output}"


HEALTH_USER = '''\
import sqlite3
import traceback
import warnings
from typing import Optional

from pool_ext import BufferPool, Holder, ObjectPool, PoolLeakWarning

pool: ObjectPool[sqlite3.Connection] = ObjectPool(
    lambda: sqlite3.connect(":memory:", check_same_thread=False), 4,
    check=lambda c: c.execute("select 1"), reset=lambda c: c.rollback(),
    destroy=lambda c: c.close(), max_lifetime=1800, max_idle=60.0, min_idle=1,
    track=True, leak_timeout=30, name="db")
conn = pool.acquire()
holders: list[Holder] = pool.holders()
first: Holder = holders[0]
where: traceback.StackSummary = first.stack
seconds: float = first.held_seconds
thread: str = first.thread_name
pool.discard(conn)
evicted: int = pool.evict()
pool.start_evictor(15)
pool.stop_evictor()
counters: dict[str, int] = pool.stats(reset=True)
limit: Optional[float] = pool.max_idle
label: Optional[str] = pool.name
warnings.simplefilter("error", PoolLeakWarning)
pool.drain(timeout=5)
numbered = ObjectPool(lambda slot: [slot], 2, pass_slot=True)
bufs = BufferPool(64, 2, track=True, leak_timeout=1.0, name="io")
tracked: bool = bufs.track
'''


def test_health_and_tracking_api_type_checks(tmp_path, mypy_cache):
    code, output = mypy_strict(tmp_path, mypy_cache, THIS_PYTHON, "health_user.py",
                               HEALTH_USER)
    assert code == 0, output


def test_stats_reset_is_keyword_only_to_mypy(tmp_path, mypy_cache):
    code, output = mypy_strict(tmp_path, mypy_cache, THIS_PYTHON, "bad_stats.py",
                               "from pool_ext import ObjectPool\n"
                               "ObjectPool(dict, 1).stats(True)\n")
    assert code != 0 and "stats" in output, output


def test_a_factory_that_takes_the_slot_needs_pass_slot_to_mypy(tmp_path, mypy_cache):
    """ObjectPool's overloads tie the factory's signature to pass_slot: a
    factory of one argument without pass_slot=True (which fails at the first
    acquire()) is a type error, and so is the reverse."""
    code, output = mypy_strict(tmp_path, mypy_cache, THIS_PYTHON, "pass_slot.py",
                               "from pool_ext import ObjectPool\n"
                               "def numbered(slot: int) -> list[int]:\n"
                               "    return [slot]\n"
                               "def plain() -> list[int]:\n"
                               "    return []\n"
                               "good = ObjectPool(numbered, 3, pass_slot=True)\n"
                               "also_good = ObjectPool(plain, 3)\n"
                               "bad = ObjectPool(numbered, 3)\n"
                               "worse = ObjectPool(plain, 3, pass_slot=True)\n")
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert code == 1 and sorted({e.split(":")[1] for e in errors}) == ["8", "9"], output


def test_arrays_are_typed_by_their_dtype_to_mypy(tmp_path, mypy_cache):
    """arrays.empty(shape, np.float32) is an NDArray[np.float32], not an
    ndarray[Any, Any]: assigning it to an NDArray of another dtype fails."""
    pytest.importorskip("numpy")
    code, output = mypy_strict(tmp_path, mypy_cache, THIS_PYTHON, "dtypes.py",
                               "import numpy as np\n"
                               "from numpy.typing import NDArray\n"
                               "from pool_ext import BufferPool, arrays\n"
                               "a: NDArray[np.float32] = arrays.empty((2, 3), np.float32)\n"
                               "b: NDArray[np.float64] = arrays.zeros(4)\n"
                               "c: NDArray[np.float32] = arrays.empty_like(a)\n"
                               "d: NDArray[np.uint8] = BufferPool(64, 1).empty(8, np.uint8)\n"
                               "with arrays.borrow(8, np.int16) as e:\n"
                               "    f: NDArray[np.int16] = e\n"
                               "g = arrays.empty(3, np.float32)\n"
                               "wrong: NDArray[np.int64] = g\n")
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert code == 1 and [e.split(":")[1] for e in errors] == ["11"], output
