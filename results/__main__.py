"""``python -m results RESULTS.json [--out DIR]``: re-render every artefact of a saved run.
``python -m results schema [--markdown]``: the results file's JSON Schema (or results/SCHEMA.md),
generated from the typed model."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from results.check import check
from results.report import write_all
from results.schema import SchemaError, json_schema, load, schema_markdown


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["schema"]:
        ap = argparse.ArgumentParser(prog="python -m results schema",
                                     description="Print the results file's JSON Schema, from results/model.py.")
        ap.add_argument("--markdown", action="store_true", help="print results/SCHEMA.md instead")
        args = ap.parse_args(argv[1:])
        print(schema_markdown() if args.markdown else json.dumps(json_schema(), indent=2))
        return 0
    ap = argparse.ArgumentParser(prog="python -m results",
                                 description="Validate a results.json and (re)write its tables, plots and report.")
    ap.add_argument("results", help="path to results.json")
    ap.add_argument("--out", help="output directory (default: the folder of RESULTS.json)")
    ap.add_argument("--with-paper", action="store_true", default=None,
                    help="put the paper's numbers beside the run's (default: only for pretrained weights)")
    ap.add_argument("--check", action="store_true",
                    help="only check the file: the schema, each point inside its interval, clip counts and cells as "
                         "the protocol lists, and (with store/ beside it) the values the stored features give")
    args = ap.parse_args(argv)
    try:
        res = load(args.results)
    except (FileNotFoundError, SchemaError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        problems, notes = check(res, Path(args.results))
        for note in notes:
            print(f"check: note: {note}")
        for problem in problems:
            print(f"check: {problem}")
        if problems:   # one error line, the problems listed above it
            print(f"lcmbench: error: {args.results} does not check: {len(problems)} problem(s), listed above. The "
                  f"file was edited or damaged after the run; rerun the score stage to rewrite it.", file=sys.stderr)
            return 2
        print(f"{args.results}: valid results schema {res.schema_version}; {res.run.experiment}, "
              f"{res.weights_mode} weights, {len(res.rows)} rows, {len(res.timing)} timings, "
              f"{len(res.vbench)} VBench entries, {len(res.ablation or [])} ablation variants; every point inside "
              f"its interval, counts and cells as the protocol lists"
              + ("" if any("not recomputed" in n for n in notes) else ", values as the stored features give"))
        return 0
    out = Path(args.out) if args.out else Path(args.results).parent
    for p in write_all(res, out, with_paper=args.with_paper):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
