"""The ``lcmbench`` command: one console script whose subcommands hand their arguments to
the project's existing entry points (``run_bench.py`` and the ``python -m`` modules)."""
