"""Fixtures of the PostgreSQL tests; the server itself is the `pg_dsn`
fixture of ../conftest.py (POOL_PG_DSN; skipped without one, failed under
POOL_REQUIRE_POSTGRES=1).  asyncpg's connection arguments: `asyncpg_kwargs`.
(test_async_streams.py needs no server.)"""
import os
import sys
import uuid

import pytest


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


# pyproject.toml's test extra installs asyncpg on these Pythons (its marker,
# python_version < "3.16": asyncpg 0.32 has wheels for CPython 3.9 to 3.15,
# free-threaded 3.14t and 3.15t included).  Only elsewhere do the asyncpg
# tests skip when it is missing; here its absence is an error.
ASYNCPG_IN_TEST_EXTRA = sys.version_info < (3, 16)


@pytest.fixture(scope="session")
def asyncpg_kwargs(pg_dsn):
    """asyncpg.connect() keyword arguments for the pg_dsn server (asyncpg
    takes no libpq conninfo string): host (a socket directory or a name),
    port, user, password, database."""
    try:
        import asyncpg  # noqa: F401
    except ImportError as e:
        if not ASYNCPG_IN_TEST_EXTRA:
            pytest.skip(f"asyncpg is not installed ({e}); the test extra leaves it out "
                        f"on Python {sys.version_info[0]}.{sys.version_info[1]}")
        pytest.fail(f"asyncpg cannot be imported ({e}), but the test extra installs it "
                    f"on this Python: pip install -e '.[test]'", pytrace=False)
    from psycopg.conninfo import conninfo_to_dict
    names = {"host": "host", "port": "port", "user": "user", "password": "password",
             "dbname": "database"}
    kwargs = {}
    for key, value in conninfo_to_dict(pg_dsn).items():
        if key not in names:
            pytest.fail(f"POOL_PG_DSN: conninfo key {key!r} has no asyncpg equivalent "
                        f"here", pytrace=False)
        kwargs[names[key]] = int(value) if key == "port" else value
    return kwargs
