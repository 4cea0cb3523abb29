"""Results of lcmbench runs: the typed results file, statistics, paper tables, plots,
report and regression checks.

The pipeline builds the results and calls :func:`results.report.write_all`, which
validates them and writes results.json, results.csv, the tables (Markdown and LaTeX),
the figures (PNG and PDF) and a self-contained report.html.
``python -m results.compare BASELINE CURRENT`` is the regression check;
``python -m results.tables RESULTS.json`` prints the tables;
``python -m results RESULTS.json --out DIR`` re-renders every artefact from a saved
results.json; ``python -m results schema`` prints the results file's JSON Schema.
"""
