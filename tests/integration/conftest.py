"""A real PostgreSQL server for the tests in this directory.

POOL_PG_DSN names it (bash .ci/run starts one with tools/pg_server.sh and
sets it; by hand: eval "$(bash tools/pg_server.sh start /tmp/pg)").  Without
it, or without psycopg and its libpq, these tests skip and say why; with
POOL_REQUIRE_POSTGRES=1 (as .ci/run sets) they fail instead.
"""
import os
import uuid

import pytest


def _unavailable(knobs):
    """Why no server can be used, or None."""
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
def pg_dsn(knobs):
    """The server's libpq conninfo string, or a skip (a failure under
    POOL_REQUIRE_POSTGRES=1) saying why there is none."""
    reason = _unavailable(knobs)
    if reason is not None:
        if knobs.require_postgres:
            pytest.fail(f"POOL_REQUIRE_POSTGRES=1, but {reason}", pytrace=False)
        pytest.skip(reason)
    return knobs.pg_dsn


@pytest.fixture
def pg_admin(pg_dsn):
    """An autocommit connection outside any pool: set-up, checks, killing."""
    import psycopg
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def app_name():
    """A unique application_name: the backends of this test's pool, and only
    them, in pg_stat_activity."""
    return f"pool_ext_it_{os.getpid()}_{uuid.uuid4().hex[:8]}"
