"""``python -m bench.prefetch``: the command the docs name."""
import sys

from bench.prefetch.fetch import main

if __name__ == "__main__":
    sys.exit(main())
