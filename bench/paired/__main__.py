"""``python -m bench.paired``: the command the docs name."""
import sys

from bench.paired.differences import main

if __name__ == "__main__":
    sys.exit(main())
