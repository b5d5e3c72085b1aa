import os
import random

import pytest


@pytest.fixture
def rng(request):
    """A seeded Random; the seed is printed so a failure can be replayed."""
    seed = int(os.environ.get("POOL_TEST_SEED", random.randrange(2**32)))
    print(f"{request.node.nodeid}: POOL_TEST_SEED={seed}")
    return random.Random(seed)
