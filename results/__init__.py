"""Results of lcmbench runs: schema, statistics, paper tables, plots, report and regression checks.

The pipeline builds a results dict (see ``results/SCHEMA.md``) and calls
:func:`results.report.write_all`, which validates it and writes results.json,
results.csv, the tables (Markdown and LaTeX), the figures (PNG and PDF) and a
self-contained report.html. ``python -m results.compare BASELINE CURRENT``
is the regression check; ``python -m results.tables RESULTS.json`` prints the
tables; ``python -m results RESULTS.json --out DIR`` re-renders every artefact
from a saved results.json.

Heavy modules (matplotlib, pandas) load only when their functions are used.
"""
from __future__ import annotations

from .schema import (SCHEMA_VERSION, Results, SchemaError, as_results, comparable, load, save, to_dataframe,
                     validate, write_csv)
from .stats import Mean, bootstrap_ci, paired_difference

__all__ = ["SCHEMA_VERSION", "Results", "SchemaError", "as_results", "comparable", "load", "save", "to_dataframe",
           "validate", "write_csv", "bootstrap_ci", "paired_difference", "Mean", "write_all",
           "write_report"]


def write_all(*args, **kwargs):
    """See :func:`results.report.write_all` (imported lazily: it pulls in matplotlib)."""
    from .report import write_all as _write_all

    return _write_all(*args, **kwargs)


def write_report(*args, **kwargs):
    """See :func:`results.report.write_report`."""
    from .report import write_report as _write_report

    return _write_report(*args, **kwargs)
