"""Preflight: check every file and setting a run needs, estimate its cost and print its plan, before anything is built.

    python -m bench.preflight experiment=table1"""
