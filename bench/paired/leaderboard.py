"""Paired differences of every generator against one reference method, in the same run.

Every method is made from the same noise seed per (prompt, video), so a clip of method A
and the clip of the reference with the same (class, video) form a pair: the bootstrap
resamples pairs, and the clip-to-clip spread the two share cancels. FVD pairs the I3D
features (statistic: FVD against the run's real-video statistics, bias-corrected
interval); per-clip metrics (CLIPSIM) pair the per-clip values.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Union

import numpy as np

from common.errors import InputError
from results.compare import PairedLine
from results.stats import paired_difference
from results.tolerances import equivalence_margin

from bench.generate.runner import MethodPlan
from bench.generate.store import ClipStore


def _by_sample(plan: MethodPlan, nfe: int, store: ClipStore, metric: Any) -> Dict[tuple, Any]:
    """The clip's sample key (class/video) -> its per-clip value, or its features for set-level
    metrics (FVD). Paired differences order the shared keys as the score stage orders a
    cell's rows, so a cell's bootstrap resamples serve them (results.stats memo)."""
    clips = [c for c in plan.clips if c.nfe == nfe]
    records = store.read_many([c.key for c in clips])
    good = [(c, records[c.key]) for c in clips if c.key in records and records[c.key].meta.get("finite", True)
            and metric.feature_key in records[c.key].features]
    if not good:
        return {}
    feats = np.stack([r.features[metric.feature_key] for _, r in good]).astype(np.float64)
    per_clip = metric.per_clip(feats)
    values = feats if per_clip is None else np.asarray(per_clip, dtype=np.float64)
    return {c.sample_key: v for (c, _), v in zip(good, values)}


def add_paired(rows: List[Dict[str, Any]], plans: Sequence[MethodPlan], store: ClipStore, metrics: Sequence[Any],
               reference: Union[str, Mapping[str, str]], n_boot: int, seed: int, alpha: float) -> None:
    """Adds ``extra.paired`` (method - reference at the same NFE, interval, reading) to
    every row of another method; the reference's rows are left as they are.
    ``reference``: one method for all, or method -> its own reference (the ablation pairs
    each joint checkpoint with the decoupled one of the same training step)."""
    plans_by = {p.name: p for p in plans}
    if isinstance(reference, str):
        if reference not in plans_by:
            raise InputError(f"report.leaderboard_reference={reference!r} is not a method of this experiment "
                             f"({', '.join(plans_by)}).")
        reference = {name: reference for name in plans_by if name != reference}
    metrics_by = {m.name: m for m in metrics}
    references = reference
    for row in rows:
        metric = metrics_by.get(row["metric"])
        reference = references.get(row["method"])
        if reference is None or metric is None or not metric.bootstraps:
            continue
        a = _by_sample(plans_by[row["method"]], row["nfe"], store, metric)
        b = _by_sample(plans_by[reference], row["nfe"], store, metric)
        if not a or not b:
            continue
        set_level = np.ndim(next(iter(a.values()))) > 0      # features, not per-clip values: FVD
        statistic = metric.bootstrap_statistic() if set_level else (lambda v: float(np.mean(v)))
        if statistic is None:    # a biased-covariance FVD protocol has no vectorised statistic
            continue
        d = paired_difference(a, b, statistic, n_boot=n_boot, seed=seed, alpha=alpha,
                              interval="bias_corrected" if set_level else "percentile")
        shared = sorted(set(a) & set(b))
        margin = equivalence_margin(row["metric"], float(statistic(np.stack([b[k] for k in shared]))))
        line = PairedLine(row["method"], row["nfe"], row["metric"], d.difference, d.lo, d.hi, d.n, len(b), len(a),
                          margin=margin)
        row["extra"]["paired"] = {"against": reference, "difference": float(d.difference),
                                  "lo": None if d.lo is None else float(d.lo),
                                  "hi": None if d.hi is None else float(d.hi), "n": int(d.n),
                                  "margin": margin, "reading": line.reading()}
