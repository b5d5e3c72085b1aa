"""pytest run from a source checkout tests the installed build.

The checkout's pool_ext/ holds no compiled module.  Run as `pytest`, the
tests import the package pip installed: pytest puts tests/ on sys.path (it
has no __init__.py), not the repository root.  `python -m pytest` from the
root would put the root first, and every test would import the checkout's
pool_ext instead; the first test here fails then, and the second proves it.
"""
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

CHECKOUT_PACKAGE = ROOT / "pool_ext"


def is_editable(dist):
    """True for `pip install -e`: PEP 610's direct_url.json says so."""
    text = dist.read_text("direct_url.json")
    return bool(text) and json.loads(text).get("dir_info", {}).get("editable", False)


def inside(path, directory):
    try:
        Path(path).resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True


def located_by_an_editable_finder(name, origin):
    """Whether a finder other than the standard path finder (an editable
    install's, such as scikit-build-core's) serves `name` from `origin`."""
    for finder in sys.meta_path:
        if finder is importlib.machinery.PathFinder or not hasattr(finder, "find_spec"):
            continue
        spec = finder.find_spec(name, None)
        if spec is not None and spec.origin and Path(spec.origin).resolve() == origin:
            return True
    return False


def test_pool_ext_is_the_installed_build():
    dist = importlib.metadata.distribution("pool-ext")
    # where `import pool_ext` goes, found without running the package
    spec = importlib.util.find_spec("pool_ext")
    assert spec is not None and spec.origin, "pool_ext is not importable"
    origin = Path(spec.origin).resolve()
    if is_editable(dist):
        # The source is the package; what must be there is the build.
        import pool_ext._pool
        compiled = Path(pool_ext._pool.__file__).resolve()
        assert compiled.is_file()
        if inside(compiled, CHECKOUT_PACKAGE):
            assert located_by_an_editable_finder("pool_ext._pool", compiled), (
                f"{compiled} is a stray build in the checkout, not the editable install's")
        return
    installed = Path(dist.locate_file("pool_ext/__init__.py")).resolve()
    assert origin == installed, (
        f"pytest imports pool_ext from {origin}, not from the installed {installed}: "
        "is the repository root first on sys.path (python -m pytest)?  Run `pytest`.")
    import pool_ext
    import pool_ext._pool
    recorded = {Path(dist.locate_file(f)).resolve() for f in dist.files or ()}
    assert Path(pool_ext.__file__).resolve() == installed
    assert Path(pool_ext._pool.__file__).resolve() in recorded, (
        f"{pool_ext._pool.__file__} is not one of the files pip installed")


def test_the_check_fails_with_the_repository_root_first_on_sys_path():
    if not (CHECKOUT_PACKAGE / "__init__.py").is_file():
        pytest.skip("tests copied away from the source tree (wheel tests)")
    if is_editable(importlib.metadata.distribution("pool-ext")):
        pytest.skip("editable install: the checkout is the package")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         f"{Path(__file__).name}::test_pool_ext_is_the_installed_build"],
        cwd=Path(__file__).parent, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "not from the installed" in proc.stdout
