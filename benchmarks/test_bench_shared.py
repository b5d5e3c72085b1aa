"""SharedBufferPool (Linux): its acquire + release pair and with-block beside
BufferPool's, and one in-process send + receive (pickle.loads(pickle.dumps(x)),
what a hand-off between processes costs besides the transport) of a held
block and of an array from empty(), against what multiprocessing's
shared_memory used by hand sends and a plain ndarray's pickle (a copy), at
64 KiB.  Per 1000 statements (read us as ns).  The hand-off between real
processes is benchmarks/shared_compare.py."""
import pytest

from pool_ext.bench.cases import shared_cases, shared_supported

why = shared_supported()
pytestmark = pytest.mark.skipif(bool(why), reason=why or "-")

CASES = {key: (stmt, ns) for key, _label, stmt, ns in shared_cases()}

PAIRS = ["shm_pair", "buf_pair", "shm_try_pair"]
WITHS = ["shm_with", "buf_with"]
SENDS = ["shm_send", "shm_send_array", "shm_by_hand_send", "shm_plain_send"]


@pytest.mark.benchmark(group="shared: acquire + release, SharedBufferPool and BufferPool")
@pytest.mark.parametrize("key", PAIRS)
def test_shared_pair(run_stmt, key):
    run_stmt(*CASES[key])


@pytest.mark.benchmark(group="shared: with-blocks, SharedBufferPool and BufferPool")
@pytest.mark.parametrize("key", WITHS)
def test_shared_with(run_stmt, key):
    run_stmt(*CASES[key])


@pytest.mark.benchmark(group="shared: send + receive in one process, 64 KiB")
@pytest.mark.parametrize("key", SENDS)
def test_shared_send(run_stmt, key):
    if key not in CASES:
        pytest.skip("needs numpy")
    run_stmt(*CASES[key], rounds=30)
