"""``python -m bench.preflight``: the command the docs name."""
import sys

from bench.preflight.checklist import main

if __name__ == "__main__":
    sys.exit(main())
