"""``python -m results FILE --check``: what a results file can prove about itself, and,
where its run folder is at hand (``store/`` beside it), what the stored features prove.

- every point lies inside its own interval;
- each row's ``n`` is the clips the provenance lists (classes x videos per prompt, less the
  non-finite and missing clips the row records);
- every (method, NFE) the protocol names has a row for each per-clip metric the run scored
  (the registry's clip-kind metrics);
- with the store, each within its metric's tolerance fact: a set statistic (a row without
  per-clip values, e.g. FVD) recomputed from the stored features as the Fréchet distance to
  the real-video statistics the row records, and a mean over clips (e.g. CLIPSIM) from the
  stored per-clip scores (the mean of each clip's stored values, then over clips).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from common import clipfile
from metrics import facts as metric_facts
from metrics import family as metric_family
from metrics.feature_stats import FeatureStats
from metrics.frechet import FrechetToReference, frechet_distance

from results.model import Results, Row
from results.registry import clip_row_metrics, is_set_statistic

_SLACK = 1e-9                  # float rounding of a point at its interval's end


def check(res: Results, results_path: Path) -> Tuple[List[str], List[str]]:
    """(problems, notes): what the file gets wrong; what could not be checked here."""
    problems: List[str] = []
    notes: List[str] = []
    scored_here = set(clip_row_metrics())   # scored from the store's features (set metrics count videos)
    rows = [r for r in res.rows if r.metric in scored_here]
    for r in res.rows:
        if r.ci_low is not None and r.ci_high is not None:
            slack = _SLACK * max(1.0, abs(r.value))
            if not r.ci_low - slack <= r.value <= r.ci_high + slack:
                problems.append(f"{_cell(r)}: value {r.value:g} lies outside its own interval "
                                f"[{r.ci_low:g}, {r.ci_high:g}].")
    config = res.provenance.config or {}
    protocol = config.get("protocol") or {}
    classes = (res.provenance.prompt_set or {}).get("classes")
    videos = protocol.get("videos_per_prompt")
    if classes and isinstance(videos, int):
        planned = len(classes) * videos
        for r in rows:
            expected = planned - int(r.extra.get("excluded_nonfinite", 0) or 0) - int(r.extra.get("missing", 0) or 0)
            if r.n != expected:
                problems.append(f"{_cell(r)}: n={r.n}, but the provenance lists {len(classes)} classes x {videos} "
                                f"videos = {planned} clips ({expected} once the excluded ones are taken off).")
    else:
        notes.append("clip counts not checked: the provenance lists no classes or videos_per_prompt.")
    if rows:
        scored = sorted({r.metric for r in rows})
        have = {(r.method, r.nfe, r.metric) for r in rows}
        for method in res.methods:
            for nfe in protocol.get("nfe") or []:
                for metric in scored:
                    if (method, int(nfe), metric) not in have:
                        problems.append(f"{method} NFE {nfe} {metric}: no row, but the protocol names "
                                        f"(method {method}, NFE {nfe}) and the run scored {metric}.")
    store = Path(results_path).parent / "store"
    if store.is_dir():
        _recompute(res, rows, store, problems, notes)
    else:
        notes.append(f"values not recomputed: no store/ beside {results_path} (check the file in its run folder).")
    return problems, notes


def _cell(r: Row) -> str:
    return f"{r.method} NFE {r.nfe} {r.metric}"


def _stored(store: Path, method: str, nfe: int, feature_key: str) -> Dict[str, np.ndarray]:
    """The finite clips of one (method, NFE) that hold ``feature_key``, by clip key."""
    out = {}
    for path in sorted((store / method / f"nfe{nfe}").rglob("*.npz")):
        if path.name.startswith("."):
            continue
        key = path.relative_to(store).with_suffix("").as_posix()
        record = clipfile.decode(path, key, with_frames=False)
        if record is not None and record.meta.get("finite", True) and feature_key in record.features:
            out[key] = np.asarray(record.features[feature_key], dtype=np.float64)
    return out


def _within(metric: str, value: float, recomputed: float) -> Optional[str]:
    kind, amount = metric_facts(metric).tolerance
    allowed = amount * abs(recomputed) if kind == "rel" else amount
    if abs(value - recomputed) <= allowed + _SLACK * max(1.0, abs(recomputed)):
        return None
    return f"the file says {value:g}, the stored features give {recomputed:g} (tolerance {allowed:g})"


def _unbiased(res: Results, metric: str) -> bool:
    """Whether the metric's protocol computes the covariance unbiased (the default)."""
    spec = (res.provenance.protocols.get(metric_family(metric)) or {}).get("protocol_spec") or {}
    return spec.get("covariance", "unbiased") != "biased"


def _recompute(res: Results, rows: List[Row], store: Path, problems: List[str], notes: List[str]) -> None:
    references: Dict[Any, Any] = {}
    for r in rows:
        feats = _stored(store, r.method, r.nfe, r.protocol)
        if len(feats) != r.n:
            problems.append(f"{_cell(r)}: the store holds {len(feats)} finite clips with features {r.protocol}, "
                            f"the file says n={r.n}.")
            continue
        x = np.stack([feats[k] for k in sorted(feats)])
        if not is_set_statistic(r):
            per_clip = x.reshape(len(x), -1).mean(axis=1)   # a clip's stored values, averaged; then over clips
            recorded = r.extra.get("per_clip") or {}
            wrong = [k for k, v in zip(sorted(feats), per_clip) if k in recorded and _within(r.metric, recorded[k], v)]
            if wrong:
                problems.append(f"{_cell(r)}: {len(wrong)} per-clip values differ from the stored features "
                                f"(e.g. {wrong[0]}).")
            why = _within(r.metric, r.value, float(per_clip.mean()))
        elif not metric_facts(r.metric).frechet_to_reference:
            notes.append(f"{_cell(r)}: not recomputed: {r.metric} is no Fréchet distance to recorded statistics "
                         f"(rerun the score stage to recompute it).")
            continue
        else:
            ref_file = r.extra.get("reference_file")
            if not ref_file or not Path(ref_file).is_file():
                notes.append(f"{_cell(r)}: not recomputed: the real-video statistics {ref_file!r} are not on this "
                             f"machine.")
                continue
            unbiased = _unbiased(res, r.metric)
            if (ref_file, unbiased) not in references:
                ref = FeatureStats.load(ref_file)
                references[(ref_file, unbiased)] = (ref.mean(), ref.cov(unbiased=unbiased))
            mu, sigma = references[(ref_file, unbiased)]
            distance = FrechetToReference(mu, sigma)(x) if unbiased else \
                frechet_distance(x.mean(axis=0), np.cov(x, rowvar=False, bias=True), mu, sigma)
            why = _within(r.metric, r.value, float(distance))
        if why:
            problems.append(f"{_cell(r)}: {why}.")
