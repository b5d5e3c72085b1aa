"""Fixtures for every test, and the one place the environment is read.

Environment knobs (all optional; pytest's header line shows the values in force):

    POOL_TEST_SEED            seed of the `rng` fixture (default: random, printed)
    POOL_STRESS_THREADS       threads per stress test (8)
    POOL_STRESS_OPS           operations per stress thread (50000)
    POOL_STRESS_SWITCH        sys.setswitchinterval() during the stress tests (5e-4)
    POOL_HYPOTHESIS_EXAMPLES  examples per state machine (200)
    POOL_HYPOTHESIS_STEPS     steps per example (40)
    POOL_LEAK_CYCLES          cycles per leak kind (1000000; see soak/test_leaks.py)
    POOL_LEAK_FULL            1: every leak kind runs all its cycles (off)
    POOL_PG_DSN               a PostgreSQL server for tests/integration (libpq
                              conninfo; tools/pg_server.sh starts one); unset: skipped
    POOL_REQUIRE_POSTGRES     1: tests/integration fail, not skip, without a server
    POOL_PG_TRANSACTIONS      transactions per thread in the PostgreSQL stress (2000)
    POOL_REQUIRE_LINT         1: tests/test_lint.py fails, not skips, without a
                              linter (pip install ".[lint]"; .ci/run sets it)
    POOL_EXT_TRACK            1: every pool tracks its hand-outs (read by pool_ext
                              itself; the suite passes either way)
    CC                        C compiler for tests/c (default: gcc, cc or clang)

Shared helpers (Thing, run_script, ...) are in helpers.py, not here.
"""
import dataclasses
import os
import random
import shutil
from pathlib import Path
from typing import Optional

import pytest


@dataclasses.dataclass(frozen=True)
class Knobs:
    seed: Optional[int]
    stress_threads: int
    stress_ops: int
    stress_switch: float
    hypothesis_examples: int
    hypothesis_steps: int
    leak_cycles: int
    leak_full: bool
    pg_dsn: Optional[str]
    require_postgres: bool
    pg_transactions: int
    require_lint: bool
    cc: Optional[str]

    @classmethod
    def from_environ(cls, env=os.environ):
        seed = env.get("POOL_TEST_SEED")
        return cls(
            seed=int(seed) if seed else None,
            stress_threads=int(env.get("POOL_STRESS_THREADS", "8")),
            stress_ops=int(env.get("POOL_STRESS_OPS", "50000")),
            stress_switch=float(env.get("POOL_STRESS_SWITCH", "5e-4")),
            hypothesis_examples=int(env.get("POOL_HYPOTHESIS_EXAMPLES", "200")),
            hypothesis_steps=int(env.get("POOL_HYPOTHESIS_STEPS", "40")),
            leak_cycles=int(env.get("POOL_LEAK_CYCLES", "1000000")),
            leak_full=env.get("POOL_LEAK_FULL", "") not in ("", "0"),
            pg_dsn=env.get("POOL_PG_DSN") or None,
            require_postgres=env.get("POOL_REQUIRE_POSTGRES", "") not in ("", "0"),
            pg_transactions=int(env.get("POOL_PG_TRANSACTIONS", "2000")),
            require_lint=env.get("POOL_REQUIRE_LINT", "") not in ("", "0"),
            cc=env.get("CC") or None,
        )


KNOBS = Knobs.from_environ()


def pytest_report_header(config):
    return "pool_ext test knobs: " + ", ".join(
        f"{f.name}={getattr(KNOBS, f.name)!r}" for f in dataclasses.fields(KNOBS))


@pytest.fixture(scope="session")
def knobs():
    """The environment knobs above, read once."""
    return KNOBS


@pytest.fixture
def rng(request):
    """A seeded Random; the seed is printed so a failure can be replayed."""
    seed = KNOBS.seed if KNOBS.seed is not None else random.randrange(2**32)
    print(f"{request.node.nodeid}: POOL_TEST_SEED={seed}")
    return random.Random(seed)


@pytest.fixture
def untracked(monkeypatch):
    """For a test about pools that do not track: POOL_EXT_TRACK unset (the
    suite also runs with POOL_EXT_TRACK=1, every other pool tracking)."""
    monkeypatch.delenv("POOL_EXT_TRACK", raising=False)


@pytest.fixture
def np():
    """numpy, or a skip where it has no wheel (Windows ARM64, CPython 3.9/3.10)."""
    return pytest.importorskip("numpy")


@pytest.fixture(scope="session")
def cmake_exe():
    """cmake on PATH, or the PyPI wheel's (the test extra brings it); None if neither."""
    exe = shutil.which("cmake")
    if exe is None:
        try:
            import cmake  # the PyPI wheel
        except ImportError:
            return None
        exe = str(Path(cmake.CMAKE_BIN_DIR) / "cmake")
    return exe


@pytest.fixture(scope="session")
def c_compiler():
    """$CC, else gcc, cc or clang on PATH; None if none."""
    return KNOBS.cc or shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")


def _postgres_unavailable(knobs):
    """Why no PostgreSQL server can be used, or None."""
    if knobs.pg_dsn is None:
        return ("no PostgreSQL server: set POOL_PG_DSN (eval \"$(bash tools/pg_server.sh "
                "start /tmp/pg)\" starts one; bash .ci/run does)")
    try:
        import psycopg
    except ImportError as e:   # psycopg, or the libpq its pure-Python layer loads
        return f"psycopg cannot be imported: {e}"
    try:
        psycopg.connect(knobs.pg_dsn, connect_timeout=10).close()
    except psycopg.Error as e:
        return f"cannot connect to POOL_PG_DSN={knobs.pg_dsn!r}: {e}"
    return None


@pytest.fixture(scope="session")
def pg_dsn():
    """A PostgreSQL server's libpq conninfo string (POOL_PG_DSN), or a skip
    saying why there is none; a failure instead under POOL_REQUIRE_POSTGRES=1
    (bash .ci/run starts a server and sets both)."""
    reason = _postgres_unavailable(KNOBS)
    if reason is not None:
        if KNOBS.require_postgres:
            pytest.fail(f"POOL_REQUIRE_POSTGRES=1, but {reason}", pytrace=False)
        pytest.skip(reason)
    return KNOBS.pg_dsn


@pytest.fixture(params=sorted(__import__("helpers").loop_factories()))
def loop_kind(request):
    """Each async test runs under asyncio's loop and under uvloop."""
    return request.param
