"""``python -m bench.regression``: the command the docs name."""
import sys

from bench.regression.job import main

if __name__ == "__main__":
    sys.exit(main())
