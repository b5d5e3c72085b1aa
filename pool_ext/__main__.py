"""``python -m pool_ext``: the same as the ``pool-ext`` command."""
import sys

from pool_ext.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m pool_ext"))
