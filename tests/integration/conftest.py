"""Fixtures of the PostgreSQL tests; the server itself is the `pg_dsn`
fixture of ../conftest.py (POOL_PG_DSN; skipped without one, failed under
POOL_REQUIRE_POSTGRES=1)."""
import os
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
