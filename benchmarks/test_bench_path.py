"""The path users run: acquire + view the memory (memoryview / np.frombuffer)
+ release, against a fresh allocation, at 1 MiB.  Per 1000 statements."""
import pytest

from pool_ext.bench.cases import path_cases

CASES = {key: (stmt, ns) for key, _label, stmt, ns in path_cases(1 << 20)}


@pytest.mark.benchmark(group="path: acquire + memoryview/frombuffer + release, 1 MiB")
@pytest.mark.parametrize("key", sorted(CASES))
def test_path(run_stmt, key):
    run_stmt(*CASES[key], rounds=50)
