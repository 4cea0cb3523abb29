"""``python -m bench.timing``: the command the docs name."""
import sys

from bench.timing.denoising import main

if __name__ == "__main__":
    sys.exit(main())
