"""python -m pool_ext bench: the README's first command runs (briefly here)."""
import json
import subprocess
import sys


def test_bench_quick_json(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pool_ext", "bench", "--quick", "--json", "--no-progress",
         "--rounds", "3"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    cases = report["cases"]
    for name in ("floor_pair", "obj_pair", "buf_pair", "simplequeue", "lifoqueue"):
        assert cases[name]["ns"] > 0, name
    assert report["machine"]["atomics"].startswith(("plain", "atomic"))


def test_bench_table_from_the_source_tree():
    # README: `pip install . && python -m pool_ext bench`, typed at the
    # repository root, where the uncompiled checkout comes first on sys.path.
    import pool_ext
    import pytest
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    if not (root / "pool_ext" / "__init__.py").is_file():
        pytest.skip("tests copied away from the source tree (wheel tests)")
    proc = subprocess.run(
        [sys.executable, "-m", "pool_ext", "bench", "--quick", "--no-progress",
         "--rounds", "3"],
        cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "pool.release(pool.acquire())" in proc.stdout
    assert pool_ext.ATOMICS in proc.stdout
