"""Paired comparison of two runs on the clips both made: ``current - baseline`` per
(method, NFE, metric), with a paired bootstrap interval.

    python -m bench.paired BASELINE_RUN_DIR CURRENT_RUN_DIR [--n-boot 1000] [--seed 0]

Both runs use the protocol's seeds, so a clip key (method, NFE, class, video) names the
same prompt and initial noise in both. Every bootstrap resample draws the same clips
for both runs, so the clip-to-clip spread they share cancels: a change far inside the
two separate intervals can still be clearly non-zero here.

- Set statistics (rows of per-clip metrics without per-clip values, e.g. FVD): from each
  run's stored features, as the Fréchet distance to the real-video statistics the results
  record (``extra.reference_file``), with the metric protocol's covariance.
- Metrics with per-clip values in results.json (e.g. CLIPSIM): from those values.

The baseline may also be a committed baseline (``bench.paired.baseline``: results.json plus the
per-clip features). A reading is "better" or "worse" only when the interval excludes 0 and
the difference is larger than the metric's equivalence margin (its tolerance fact, e.g.
2% of the baseline's FVD, 0.25 CLIPSIM points), so float noise between a sharded and a
single run of the same clips reads "no clear change".

Refuses runs that ``results.compare`` would refuse (``results.schema.comparable``: other
protocols, weights modes, prompt sets, real-video references), naming every difference. Exit 0
when the table was printed, 2 when the runs cannot be paired.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from common.errors import LcmbenchError
from metrics import display as metric_display
from metrics import family as metric_family
from metrics.frechet import FrechetToReference, frechet_distance
from metrics.feature_stats import FeatureStats
from results.compare import PairedLine, format_paired
from results.compare import paired as paired_per_clip
from results.model import Results
from results.registry import is_set_statistic
from results.schema import SchemaError, comparable, load
from results.stats import paired_difference
from results.tolerances import equivalence_margin

from bench.generate.store import ClipStore
from bench.paired.baseline import INPUT_KEYS, Baseline, BaselineError, clip_inputs


class CannotPair(LcmbenchError, ValueError):
    """The two runs cannot be compared clip by clip."""


@dataclass
class RunFiles:
    run_dir: Path
    results: Results
    store: ClipStore
    keys: List[str]          # the store's clip keys, listed once (a Table 1 store holds ~39,000 files)

    def features(self, method: str, nfe: int, feature_key: str) -> Dict[str, np.ndarray]:
        prefix = f"{method}/nfe{nfe}/"
        records = self.store.read_many(k for k in self.keys if k.startswith(prefix))
        return {k: np.asarray(r.features[feature_key], dtype=np.float64) for k, r in records.items()
                if feature_key in r.features and r.meta.get("finite", True)}

    def inputs(self, keys: Iterable[str]) -> Dict[str, Dict[str, object]]:
        return {k: clip_inputs(r.meta) for k, r in self.store.read_many(keys).items()}


Source = Union[RunFiles, Baseline]   # both answer results, keys, features() and inputs()


def open_run(run_dir: Path) -> RunFiles:
    run_dir = Path(run_dir)
    if not (run_dir / "results.json").is_file():
        raise CannotPair(f"{run_dir} has no results.json: give the run directory of a finished run "
                         f"(hydra.run.dir of that run).")
    if not (run_dir / "store").is_dir():
        raise CannotPair(f"{run_dir} has no store/ folder: the clip features are needed to pair set statistics "
                         f"such as FVD.")
    store = ClipStore(run_dir / "store")
    return RunFiles(run_dir, load(run_dir / "results.json"), store, store.keys())


def open_source(path: Path) -> Source:
    """A run folder, or a committed baseline's .json (with its .features.npz beside it)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        try:
            return Baseline(path)
        except BaselineError as err:
            raise CannotPair(str(err)) from None
    return open_run(path)


def reference_statistic(reference_file: str, unbiased: bool) -> Callable[[np.ndarray], float]:
    """The Fréchet distance of a feature set [N, D] to the stored real-video statistics (FVD's
    statistic, and that of any set statistic recorded against a reference file)."""
    if not reference_file or not Path(reference_file).is_file():
        raise CannotPair(f"the real-video statistics file {reference_file!r} recorded in the results is not on this "
                         f"machine; run both comparisons where the runs were scored (the file lives in the "
                         f"lcmbench cache).")
    ref = FeatureStats.load(reference_file)
    if unbiased:
        return FrechetToReference(ref.mean(), ref.cov(unbiased=True))   # vectorised over resamples
    mu_ref, sigma_ref = ref.mean(), ref.cov(unbiased=False)
    return lambda x: frechet_distance(x.mean(axis=0), np.cov(x, rowvar=False, bias=True), mu_ref, sigma_ref)


def _unbiased(results: Results, metric: str) -> bool:
    spec = (results.provenance.protocols.get(metric_family(metric)) or {}).get("protocol_spec") or {}
    return spec.get("covariance", "unbiased") != "biased"


def paired_set_statistics(base: Source, cur: Source, n_boot: int, seed: int,
                          alpha: float) -> Tuple[List[PairedLine], List[str]]:
    """Paired differences of every set-statistic row both runs have, from the stored features."""
    base_rows = {r.key: r for r in base.results.rows}
    statistics: Dict[Tuple[str, bool], Callable[[np.ndarray], float]] = {}   # per reference file: loaded once
    lines: List[PairedLine] = []
    notes: List[str] = []
    for row in cur.results.rows:
        other = base_rows.get(row.key)
        if other is None or not is_set_statistic(row):
            continue
        cell = f"{row.method} NFE {row.nfe} {metric_display(row.metric)}"
        if other.protocol != row.protocol:
            notes.append(f"{cell}: feature keys differ ({other.protocol} vs {row.protocol})")
            continue
        ref_file = row.extra.get("reference_file")
        if not ref_file:
            notes.append(f"{cell}: not paired (the row records no reference statistics file)")
            continue
        unbiased = _unbiased(cur.results, row.metric)
        if (ref_file, unbiased) not in statistics:
            statistics[(ref_file, unbiased)] = reference_statistic(ref_file, unbiased)
        statistic = statistics[(ref_file, unbiased)]
        a = cur.features(row.method, row.nfe, row.protocol)
        b = base.features(row.method, row.nfe, row.protocol)
        try:
            d = paired_difference(a, b, statistic, n_boot=n_boot, seed=seed, alpha=alpha,
                                  interval="bias_corrected")
        except ValueError as err:
            notes.append(f"{cell}: not paired ({err})")
            continue
        # the margin is relative to the baseline's value on the shared clips, against the same reference
        base_value = float(statistic(np.stack([b[k] for k in sorted(set(a) & set(b))])))
        lines.append(PairedLine(row.method, row.nfe, row.metric, d.difference, d.lo, d.hi, d.n, len(b), len(a),
                                cur.results.display_name(row.method), equivalence_margin(row.metric, base_value)))
    return lines, notes


def input_differences(base: Source, cur: Source) -> Dict[str, List[str]]:
    """Clip key -> how its inputs differ (noise seed, prompt, negative prompt), for every
    clip both made: a pair is the same clip made twice only when these agree."""
    shared = sorted(set(base.keys) & set(cur.keys))
    a, b = base.inputs(shared), cur.inputs(shared)
    out: Dict[str, List[str]] = {}
    for key in shared:
        if key in a and key in b:
            differs = [f"{k} {a[key].get(k)!r} vs {b[key].get(k)!r}" for k in INPUT_KEYS if a[key].get(k) != b[key].get(k)]
            if differs:
                out[key] = differs
    return out


def check_same_inputs(base: Source, cur: Source) -> None:
    """Refuse runs whose shared clip keys were made from other seeds or captions."""
    for key, differs in input_differences(base, cur).items():
        raise CannotPair(f"clip {key} was made from other inputs in the two runs ({'; '.join(differs)}): "
                         f"pairs must share seed and prompt. Compare runs made with the same protocol.seed "
                         f"and prompt set.")


def refuse_incomparable(base: Source, cur: Source) -> None:
    """The one comparability rule (results.schema.comparable), naming every difference."""
    reasons = comparable(base.results, cur.results)
    if reasons:
        raise CannotPair("the runs are not comparable: " + "; ".join(reasons))


def compare_runs(baseline_dir: Path, current_dir: Path, n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> Tuple[List[PairedLine], List[str]]:
    base, cur = open_source(baseline_dir), open_run(current_dir)
    refuse_incomparable(base, cur)
    check_same_inputs(base, cur)
    set_lines, set_notes = paired_set_statistics(base, cur, n_boot, seed, alpha)
    clip_lines, clip_notes = paired_per_clip(base.results, cur.results, n_boot=n_boot, seed=seed, alpha=alpha)
    return set_lines + clip_lines, set_notes + clip_notes


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.paired", description=__doc__.split("\n\n")[0])
    ap.add_argument("baseline", help="run directory of the baseline run (holds results.json and store/), or a "
                                     "committed baseline's .json (with its .features.npz beside it)")
    ap.add_argument("current", help="run directory of the run to compare")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--alpha", type=float, default=0.05)
    args = ap.parse_args(argv)
    try:
        lines, notes = compare_runs(Path(args.baseline), Path(args.current), args.n_boot, args.seed, args.alpha)
    except (CannotPair, SchemaError, FileNotFoundError) as err:
        print(f"lcmbench: error: {err}", file=sys.stderr)
        return 2
    print(f"Paired differences, current - baseline, on the clips both runs made ({args.n_boot} paired "
          f"bootstrap resamples, seed {args.seed}; set statistics: bias-corrected interval)")
    print(f"  baseline: {args.baseline}\n  current:  {args.current}\n")
    print(format_paired(lines, args.alpha) if lines else "  nothing to pair: no set-statistic rows or per-clip "
                                                           "values in both runs")
    for n in notes:
        print(f"note: {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
