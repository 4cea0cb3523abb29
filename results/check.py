"""``python -m results FILE --check``: what a results file can prove about itself, and,
where its run folder is at hand (``store/`` beside it), what the stored features prove.

- every point lies inside its own interval;
- each row's ``n`` is the clips the provenance lists (classes x videos per prompt, less the
  non-finite and missing clips the row records);
- every (method, NFE) the protocol names has a row for each metric the run scored;
- with the store: FVD recomputed from the stored I3D features against the recorded
  real-video statistics, and CLIPSIM from the stored per-frame scores (the mean of the
  per-clip means), each within the metric's tolerance.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from common import clipfile
from metrics import facts as metric_facts
from metrics.feature_stats import FeatureStats
from metrics.frechet import FrechetToReference, frechet_distance

from .model import Results, Row

SCORED = ("fvd", "clipsim")   # the clip metrics a run scores from its store (VBench rows count videos)
_SLACK = 1e-9                  # float rounding of a point at its interval's end


def check(res: Results, results_path: Path) -> Tuple[List[str], List[str]]:
    """(problems, notes): what the file gets wrong; what could not be checked here."""
    problems: List[str] = []
    notes: List[str] = []
    rows = [r for r in res.rows if r.metric in SCORED]
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


def _recompute(res: Results, rows: List[Row], store: Path, problems: List[str], notes: List[str]) -> None:
    spec = (res.provenance.protocols.get("fvd") or {}).get("protocol_spec") or {}
    unbiased = spec.get("covariance", "unbiased") != "biased"
    references: Dict[str, Any] = {}
    for r in rows:
        feats = _stored(store, r.method, r.nfe, r.protocol)
        if len(feats) != r.n:
            problems.append(f"{_cell(r)}: the store holds {len(feats)} finite clips with features {r.protocol}, "
                            f"the file says n={r.n}.")
            continue
        x = np.stack([feats[k] for k in sorted(feats)])
        if r.metric == "clipsim":
            per_clip = x.reshape(len(x), -1).mean(axis=1)   # CLIPSIM: mean over frames, then over clips
            recorded = r.extra.get("per_clip") or {}
            wrong = [k for k, v in zip(sorted(feats), per_clip) if k in recorded and _within("clipsim", recorded[k], v)]
            if wrong:
                problems.append(f"{_cell(r)}: {len(wrong)} per-clip values differ from the stored features "
                                f"(e.g. {wrong[0]}).")
            why = _within("clipsim", r.value, float(per_clip.mean()))
        else:
            ref_file = r.extra.get("reference_file")
            if not ref_file or not Path(ref_file).is_file():
                notes.append(f"{_cell(r)}: not recomputed: the real-video statistics {ref_file!r} are not on this "
                             f"machine.")
                continue
            if ref_file not in references:
                ref = FeatureStats.load(ref_file)
                references[ref_file] = (ref.mean(), ref.cov(unbiased=unbiased))
            mu, sigma = references[ref_file]
            fvd = FrechetToReference(mu, sigma)(x) if unbiased else \
                frechet_distance(x.mean(axis=0), np.cov(x, rowvar=False, bias=True), mu, sigma)
            why = _within("fvd", r.value, float(fvd))
        if why:
            problems.append(f"{_cell(r)}: {why}.")
