"""acquire + release pairs and ``with`` blocks: pool_ext against an empty
method call (the fastest any extension can be) and the pools people write by hand.  Times are per 1000 statements (read us as ns)."""
import pytest

from pool_ext.bench.cases import core_cases

CASES = {key: (stmt, ns) for key, _label, stmt, ns in core_cases()}

PAIRS = ["floor_pair", "obj_pair", "obj_try_pair", "buf_pair", "list", "deque", "simplequeue",
         "locklist", "lifoqueue", "seed64", "seed1024"]
WITHS = ["floor_with", "floor_with_self", "obj_with", "buf_with"]


@pytest.mark.benchmark(group="pair: acquire + release")
@pytest.mark.parametrize("key", PAIRS)
def test_pair(run_stmt, key):
    run_stmt(*CASES[key])


@pytest.mark.benchmark(group="with: lease blocks")
@pytest.mark.parametrize("key", WITHS)
def test_with(run_stmt, key):
    run_stmt(*CASES[key])
