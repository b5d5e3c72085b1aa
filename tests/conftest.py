import os
import random
import shutil
from pathlib import Path

import pytest


@pytest.fixture
def rng(request):
    """A seeded Random; the seed is printed so a failure can be replayed."""
    seed = int(os.environ.get("POOL_TEST_SEED", random.randrange(2**32)))
    print(f"{request.node.nodeid}: POOL_TEST_SEED={seed}")
    return random.Random(seed)


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
