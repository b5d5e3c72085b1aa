"""The benchmark behind ``pool-ext bench``: pool_ext next to Python's
containers and the pools people write in Python, all timed the same way.

Pure Python; numpy is used when installed, matplotlib only for ``--plot``.

- ``cases``: the statements timed, and the hand-written pools they run on;
- ``timing``: interleaved rounds, medians and interquartile ranges;
- ``memory``: the process's resident memory, and a pool's bytes per slot;
- ``shared``: SharedBufferPool's hand-off of an array to another process (Linux);
- ``report``: the table; ``plot``: the figure; ``cli``: the command line.

benchmarks/ (pytest-benchmark and callgrind) times the same cases.
"""
