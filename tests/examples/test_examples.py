"""The programs in examples/ run, each in a fresh interpreter, and print
what they promise.  (examples/ is in the sdist and in cibuildwheel's
test-sources; where it is missing, these skip.)"""
import subprocess
import sys

import pytest

from helpers import ROOT

EXAMPLES = ROOT / "examples"


def run_example(name, tmp_path, *args):
    path = EXAMPLES / name
    if not path.is_file():
        pytest.skip(f"{path} is not here (a copy of tests/ without examples/)")
    # From tmp_path, so that the installed pool_ext is imported.
    proc = subprocess.run([sys.executable, "-X", "faulthandler", "-W", "error", str(path),
                           *args], cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=120)
    sys.stdout.write(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_sqlite_connections_shared_by_threads(tmp_path):
    out = run_example("sqlite_threads.py", tmp_path)
    assert "rows: 800" in out and "connections: 4 for 8 threads" in out


def test_http_keep_alive_connections(tmp_path):
    out = run_example("http_keepalive.py", tmp_path)
    assert "requests: 200, TCP connections: 4" in out
    assert "after a pause: (200, b'hello\\n')" in out


def test_postgres_connections(tmp_path, pg_dsn):
    out = run_example("postgres_pool.py", tmp_path, pg_dsn)
    assert "rows: 800" in out and "connections made: 8," in out


def test_postgres_example_without_a_dsn_prints_its_usage(tmp_path, monkeypatch):
    path = EXAMPLES / "postgres_pool.py"
    if not path.is_file():
        pytest.skip(f"{path} is not here (a copy of tests/ without examples/)")
    monkeypatch.delenv("POOL_PG_DSN", raising=False)
    proc = subprocess.run([sys.executable, str(path)], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("usage: python examples/postgres_pool.py "), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SharedBufferPool is Linux only")
def test_shared_workers_pass_arrays(tmp_path):
    pytest.importorskip("numpy")
    out = run_example("shared_workers.py", tmp_path)
    assert "32 arrays summed:" in out
    assert "mean 0.000, std 1.000; the sender's copy is read-only: True" in out
    assert "blocks held now: 1 (y)" in out and "and after del: 0" in out
