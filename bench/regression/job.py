"""The regression check, end to end: the whole GPU CI job, runnable on any machine.

    python -m bench.regression --baseline results/baselines/regression-tiny-cpu.json experiment=regression_tiny
    python -m bench.regression --baseline results/baselines/regression.json --manifest M.json experiment=regression

Steps, each stopping the check with what to do:

1. the baseline is read (``bench.paired.baseline``: its results.json and per-clip features); none
   is a failure that says how to make one (``--allow-missing-baseline``: a notice instead);
2. the composed experiment is checked against the baseline's protocol and weights mode
   before anything is made (``results.comparability``: every difference named, exit 2);
3. ``--manifest``: the prefetched files are verified offline (``bench.prefetch --verify``);
4. preflight: every weight and metric asset the run reads, each missing one named;
5. the experiment runs into ``--run-dir`` (Hydra overrides given here reach it);
6. the verdict, paired on the clips both runs made (``bench.paired``): set statistics (e.g.
   FVD) recomputed from the baseline's and the run's stored features against the run's
   reference statistics, per-clip metrics (e.g. CLIPSIM) per clip, paired bootstrap
   intervals, and each metric's equivalence margin (its tolerance fact), so float noise on
   the same clips passes and is never "worse". A cell whose clips were made from other
   captions or seeds than the baseline's is a change too, and so is a cell whose clips
   themselves moved: the median relative change of a clip's stored features (those of its
   set statistics, e.g. I3D's) beyond ``--clip-tolerance`` (1e-3), which sees changes far
   below what a set statistic over a few clips can resolve. That comparison needs the
   baseline's float rounding (device, dtype, CPU threads, batch size change the last bits
   of every clip); where these differ only the margins decide, and the summary says so.
   The markdown summary and the JSON verdict go into the run folder (and ``--summary``,
   e.g. ``$GITHUB_STEP_SUMMARY``).

Exit status: 0 pass; 1 a regression (each named by method and NFE: a clear change beyond
the margin, ``worse`` or, unless ``--allow-better``, ``better``; clips that moved; a missing
cell; changed clip inputs); 2 not comparable or bad input; 3 the run itself failed.

``--make-baseline OUT.json`` runs the experiment and writes OUT.json and
OUT.features.npz from it instead of a verdict, then prints how to commit them.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from common.files import write_atomic
from results.comparability import setting_differences
from results.compare import PairedLine, format_paired
from results.compare import paired as paired_per_clip
from results.registry import is_set_statistic
from results.schema import SchemaError

from bench.paired.baseline import Baseline, BaselineError, write_baseline
from bench.plan.config import CONFIG_DIR, compose, plain
from common.errors import fail
from bench.paired.differences import CannotPair, input_differences, open_run, paired_set_statistics, refuse_incomparable
from bench.plan.overrides import check_overrides
from bench.prefetch.fetch import main as prefetch_main
from bench.preflight.checklist import format_plan, preflight

REPO = Path(__file__).resolve().parents[2]
EXIT_PASS, EXIT_REGRESSION, EXIT_INCOMPARABLE, EXIT_RUN_FAILED = 0, 1, 2, 3
HOW_TO_MAKE = ("make one on this kind of machine: python -m bench.regression --make-baseline {path} {overrides} "
               "(results/baselines/README.md), review it and commit both files")


def _args(argv: Optional[Sequence[str]]):
    ap = argparse.ArgumentParser(prog="python -m bench.regression", description=__doc__.split("\n\n")[0],
                                 epilog="Other arguments are Hydra overrides for the run, e.g. "
                                        "experiment=regression_tiny methods.animatelcm.lora_scale=0.9.")
    ap.add_argument("--baseline", help="the committed baseline's .json (its .features.npz beside it)")
    ap.add_argument("--run-dir", help="where the run writes (default runs/regression-<time>)")
    ap.add_argument("--manifest", help="a prefetch manifest to verify before the run (bench.prefetch --verify)")
    ap.add_argument("--summary", help="also append the markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")
    ap.add_argument("--make-baseline", metavar="OUT.json", help="run, then write a baseline candidate instead "
                                                                  "of a verdict")
    ap.add_argument("--allow-missing-baseline", action="store_true",
                    help="no baseline: print how to make one and exit 0 instead of failing")
    ap.add_argument("--allow-better", action="store_true", help="a clear improvement passes (default: any clear "
                                                                  "change fails until the baseline is refreshed)")
    ap.add_argument("--no-run", action="store_true", help="compute the verdict for the finished run in --run-dir")
    ap.add_argument("--n-boot", type=int, default=1000, help="paired bootstrap resamples")
    ap.add_argument("--clip-tolerance", type=float, default=1e-3,
                    help="how far (relative) a clip's stored features may move before its cell counts as changed")
    ap.add_argument("--alpha", type=float, default=0.05)
    args, overrides = ap.parse_known_args(argv)
    bad = [o for o in overrides if o.startswith("-")]
    if bad:
        fail(f"unknown option(s) {' '.join(bad)} for python -m bench.regression; see --help.")
    if not args.make_baseline and not args.baseline:
        fail("give --baseline BASELINE.json (e.g. results/baselines/regression-tiny-cpu.json), or --make-baseline "
             "OUT.json to make one.")
    if args.no_run and not args.run_dir:
        fail("--no-run computes the verdict of a finished run: give its folder with --run-dir.")
    if not args.clip_tolerance > 0.0:
        fail(f"--clip-tolerance {args.clip_tolerance} is not allowed: use a relative change above 0, e.g. 1e-3.")
    if args.n_boot < 1 or not 0.0 < args.alpha < 1.0:
        fail(f"--n-boot {args.n_boot} / --alpha {args.alpha}: use 1 or more resamples and an alpha between 0 and 1.")
    return args, list(overrides)


def _load_baseline(args, overrides: List[str]) -> Optional[Baseline]:
    path = Path(args.baseline)
    if not path.is_file():
        how = HOW_TO_MAKE.format(path=path, overrides=" ".join(overrides))
        if args.allow_missing_baseline:
            print(f"regression check skipped: no baseline {path} ({how}).")
            return None
        fail(f"no baseline {path}: the regression check cannot pass without one; {how}.")
    try:
        return Baseline(path)
    except (BaselineError, SchemaError) as err:
        fail(f"{err}")


def precheck(cfg: Any, base: Baseline) -> List[str]:
    """Protocol and weights-mode differences between the composed run and the baseline,
    found before anything is built."""
    recorded = (base.results.provenance.config or {}).get("protocol") or {}
    reasons = setting_differences(recorded, plain(cfg.protocol)) if recorded else []
    if str(cfg.weights) != base.results.weights_mode:
        reasons.append(f"weights modes differ: {base.results.weights_mode!r} vs {str(cfg.weights)!r}")
    return reasons


def run_experiment(overrides: List[str], run_dir: Path) -> int:
    cmd = [sys.executable, str(REPO / "run_bench.py"), *overrides, f"hydra.run.dir={run_dir}"]
    print("$ " + " ".join(cmd[1:]), flush=True)
    return subprocess.run(cmd, cwd=REPO).returncode


# ---------------------------------------------------------------- verdict

def clip_changes(base: Baseline, cur) -> Dict[tuple, tuple]:
    """(method, NFE) -> (median over the shared clips of |f_run - f_baseline| / |f_baseline|
    of each clip's stored features, clips), the largest over the cell's set statistics (e.g.
    FVD's I3D features): how far the same clips moved. The same seeds and inputs make the
    same clips, so this sees a change long before a set-level metric does."""
    out: Dict[tuple, tuple] = {}
    for row in cur.results.rows:
        if not is_set_statistic(row):
            continue
        a, b = cur.features(row.method, row.nfe, row.protocol), base.features(row.method, row.nfe, row.protocol)
        shared = sorted(set(a) & set(b))
        if shared:
            rel = [float(np.linalg.norm(a[k] - b[k]) / max(np.linalg.norm(b[k]), 1e-12)) for k in shared]
            moved = (float(np.median(rel)), len(shared))
            out[(row.method, row.nfe)] = max(out.get((row.method, row.nfe), moved), moved)
    return out


def rounding_differences(a, b) -> List[str]:
    """What makes float rounding differ between two runs' clips: device, dtype, CPU threads,
    batch size. Clips are compared one by one only when these agree."""
    def conditions(res) -> Dict[str, Any]:
        runner = (res.provenance.config or {}).get("runner") or {}
        dev = res.provenance.device
        return {"device": dev.name, "dtype": dev.dtype, "torch threads": getattr(dev, "torch_threads", None),
                "runner.batch_size": runner.get("batch_size")}
    ca, cb = conditions(a), conditions(b)
    return [f"{k} {ca[k]} vs {cb[k]}" for k in ca if ca[k] != cb[k]]


def verdict_lines(base: Baseline, run_dir: Path, n_boot: int, alpha: float, allow_better: bool,
                  clip_tolerance: float = 1e-3) -> Dict[str, Any]:
    """The paired lines and every failure, each naming its method and NFE."""
    cur = open_run(run_dir)
    refuse_incomparable(base, cur)
    set_lines, notes = paired_set_statistics(base, cur, n_boot, 0, alpha)
    clip, clip_notes = paired_per_clip(base.results, cur.results, n_boot=n_boot, seed=0, alpha=alpha)
    lines: List[PairedLine] = set_lines + clip
    failures: List[Dict[str, Any]] = []
    for ln in lines:
        reading = ln.reading()
        if reading == "worse" or (reading == "better" and not allow_better):
            failures.append({"method": ln.method, "nfe": ln.nfe, "metric": ln.metric, "kind": reading,
                             "why": f"{ln.metric} {ln.difference:+.4g} (interval [{ln.lo:+.4g}, {ln.hi:+.4g}], "
                                    f"margin ±{ln.margin:.4g}) on {ln.n} shared clips"})
    changed: Dict[tuple, List[str]] = {}
    for key, differs in input_differences(base, cur).items():
        method, nfe = key.split("/")[0], int(key.split("/")[1][3:])
        changed.setdefault((method, nfe), []).append(f"{key}: {'; '.join(differs)}")
    for (method, nfe), what in sorted(changed.items()):
        failures.append({"method": method, "nfe": nfe, "metric": "inputs", "kind": "changed inputs",
                         "why": f"{len(what)} clip(s) made from other inputs than the baseline's ({what[0]}"
                                f"{' ...' if len(what) > 1 else ''})"})
    moved = clip_changes(base, cur)
    other = rounding_differences(base.results, cur.results)
    if other:
        notes.append(f"clips not compared bit for bit: {', '.join(other)}; float rounding differs, so only the "
                     f"metrics' equivalence margins decide (pin them to the baseline's to see small changes)")
    for (method, nfe), (median, n) in sorted(moved.items()):
        if median > clip_tolerance and not other:
            failures.append({"method": method, "nfe": nfe, "metric": "clips", "kind": "clips changed",
                             "why": f"the stored features of its {n} clips moved by {median:.2e} of their norm "
                                    f"(median; float noise on the same clips stays below --clip-tolerance "
                                    f"{clip_tolerance:g})"})
    have = {(r.method, r.nfe, r.metric) for r in cur.results.rows}
    for r in base.results.rows:
        if (r.method, r.nfe, r.metric) not in have:
            failures.append({"method": r.method, "nfe": r.nfe, "metric": r.metric, "kind": "missing",
                             "why": f"{r.metric} is in the baseline but not in this run"})
    return {"lines": lines, "failures": failures, "notes": notes + clip_notes, "results": cur.results,
            "clips_moved": [{"method": m, "nfe": n, "median_relative_change": v, "clips": c}
                            for (m, n), (v, c) in sorted(moved.items())]}


def _label(res, method: str) -> str:
    return f"{res.display_name(method)} ({method})"


def render(outcome: Dict[str, Any], baseline: Path, run_dir: Path, verdict: str, n_boot: int) -> str:
    res = outcome["results"]
    head = [f"### lcmbench regression check: {verdict}", "",
            f"baseline `{baseline}` vs run `{run_dir}`: paired on the shared clips, {n_boot} paired bootstrap "
            f"resamples; a change counts when its interval excludes 0 and it exceeds the metric's margin.", ""]
    for f in outcome["failures"]:
        head.append(f"- **{f['kind'].upper()}** {_label(res, f['method'])} at {f['nfe']} steps: {f['why']}")
    moved = ", ".join(f"{_label(res, c['method'])} {c['nfe']} steps {c['median_relative_change']:.1e}"
                      for c in outcome["clips_moved"])
    body = ["", "```", format_paired(outcome["lines"]), "```", "",
            f"Stored features moved (median relative change per clip): {moved or 'no set-statistic cells'}."]
    body += [f"> note: {n}" for n in outcome["notes"]]
    return "\n".join(head + body) + "\n"


def write_verdict(outcome: Dict[str, Any], args, run_dir: Path, verdict: str, code: int) -> str:
    text = render(outcome, Path(args.baseline), run_dir, verdict, args.n_boot)
    write_atomic(run_dir / "regression_summary.md", text)
    doc = {"verdict": verdict, "exit": code, "baseline": str(args.baseline), "run_dir": str(run_dir),
           "failures": outcome["failures"], "notes": outcome["notes"], "clips_moved": outcome["clips_moved"],
           "lines": [dict(vars(ln), reading=ln.reading()) for ln in outcome["lines"]]}
    write_atomic(run_dir / "regression_verdict.json", json.dumps(doc, indent=2) + "\n")
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as f:
            f.write(text)
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    args, overrides = _args(argv)
    problem = check_overrides(overrides, str(CONFIG_DIR))
    if problem:
        fail(problem)
    try:
        cfg = compose(overrides)
    except Exception as err:  # a Hydra composition error is a user error: one line
        fail(f"{err}".splitlines()[0] if str(err) else type(err).__name__)
    run_dir = Path(args.run_dir or REPO / "runs" / f"regression-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    base = None if args.make_baseline else _load_baseline(args, overrides)
    if base is None and not args.make_baseline:
        return EXIT_PASS
    if base is not None:
        reasons = precheck(cfg, base)
        if reasons:
            fail(f"this run would not be comparable with the baseline {args.baseline}: " + "; ".join(reasons)
                 + ". Run with the baseline's protocol, or make a new baseline for this one.")
    if not args.no_run:
        if args.manifest and prefetch_main(["--verify", args.manifest]) != 0:
            fail(f"the prefetched files do not verify against {args.manifest} (listed above): prefetch them again "
                 f"(python -m bench.prefetch {' '.join(overrides)}) into the runner's cache.")
        report = preflight(cfg, run_dir)
        print(format_plan(report), flush=True)
        if not report.ok:
            fail(f"preflight found {len(report.problems)} problem(s), listed above: this runner lacks what the "
                 f"experiment reads. Prefetch them (python -m bench.prefetch {' '.join(overrides)}) or fix the "
                 f"settings.")
        code = run_experiment(overrides, run_dir)
        if code != 0:
            print(f"lcmbench: error: the run failed (exit {code}); its folder is {run_dir}.", file=sys.stderr)
            return EXIT_INCOMPARABLE if code == 2 else EXIT_RUN_FAILED
    if args.make_baseline:
        return _make_baseline(run_dir, Path(args.make_baseline), overrides)
    try:
        outcome = verdict_lines(base, run_dir, args.n_boot, args.alpha, args.allow_better, args.clip_tolerance)
    except (CannotPair, SchemaError, FileNotFoundError) as err:
        fail(f"{err}")
    code = EXIT_REGRESSION if outcome["failures"] else EXIT_PASS
    verdict = "REGRESSION" if code else "PASS"
    print(write_verdict(outcome, args, run_dir, verdict, code))
    print(f"verdict: {verdict} (exit {code}); summary and verdict in {run_dir}/regression_summary.md, "
          f"regression_verdict.json")
    return code


def _make_baseline(run_dir: Path, out: Path, overrides: List[str]) -> int:
    try:
        js, npz = write_baseline(run_dir, out)
    except (BaselineError, SchemaError) as err:
        fail(f"{err}")
    size = js.stat().st_size + npz.stat().st_size
    print(f"baseline candidate: {js} ({js.stat().st_size:,} bytes) and {npz} ({npz.stat().st_size:,} bytes), "
          f"{size:,} bytes in all")
    print("Review it (report.html in the run folder), then commit both files:\n"
          f"  python -m results {js} --check\n  git add {js} {npz}\n"
          f"  git commit -m \"Regression baseline: {' '.join(overrides) or 'default experiment'}\"")
    return EXIT_PASS


if __name__ == "__main__":
    sys.exit(main())
