"""``python -m bench.fvd_reference OUT_DIR experiment=regression ...``: the command the docs name for FVD's
reference file (the code is bench/regression/fvd_reference.py)."""
import sys

from bench.regression.fvd_reference import main

if __name__ == "__main__":
    sys.exit(main())
