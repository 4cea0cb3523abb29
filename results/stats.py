"""Bootstrap confidence intervals over clips, and paired differences between runs.

The unit of resampling is the clip: a run's per-clip values (CLIPSIM) or
per-clip features (the I3D logits FVD is computed from) are resampled with
replacement, the statistic is recomputed on every resample, and the interval
is read off the bootstrap distribution. Resampling draws from
``numpy.random.default_rng(seed)``, so the same seed gives the same interval.

A statistic is any callable ``f(X) -> float`` on the stacked rows ``X``
([N] values or [N, D] features). Statistics that also provide
``weighted(X, W) -> [B]`` (``W``: [B, N] resampling counts, each row summing
to N) are evaluated for many resamples at once; :class:`Mean` and
:class:`metrics.frechet.FrechetToReference` do, which keeps FVD intervals on 400-d features
cheap.

FVD is biased upwards by duplicated clips (a resample holds about 63% unique
clips), so its percentile interval can lie above the point estimate; compare
runs with :func:`paired_difference`, where that bias cancels, and read an FVD
interval as the spread of the estimate. Two alternatives are available:
``interval="basic"`` (2*point - q_hi, 2*point - q_lo) and
``interval="bias_corrected"`` (the percentile interval shifted down by the
bootstrap bias estimate mean(boot) - point), which for FVD is centred near
the point estimate and keeps the percentile interval's width.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Hashable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from common.errors import InputError
from common.files import array_digest

ArrayLike = Union[np.ndarray, Sequence[float], Sequence[Sequence[float]]]
Statistic = Union[str, Callable[[np.ndarray], float]]

INTERVALS = ("percentile", "basic", "bias_corrected")

# The resample statistics of (statistic, clips, draws) already computed in this process. A
# run's cell and its paired differences resample the same clips with the same draws (the
# leaderboard pairs every method with one reference), so each cell's resamples are computed
# once. Only statistics that name their content (``memo_key``) are kept; ~8 KB an entry.
_MEMO: "OrderedDict[Tuple[Any, ...], np.ndarray]" = OrderedDict()
MEMO_ENTRIES = 512


class Interval(NamedTuple):
    """``(point, lo, hi)``: the statistic on all clips and its bootstrap interval."""

    point: float
    lo: Optional[float]
    hi: Optional[float]

    @property
    def half_width(self) -> Optional[float]:
        return None if self.lo is None else (self.hi - self.lo) / 2.0


class PairedInterval(NamedTuple):
    """``(difference, lo, hi, n)``: statistic(a) - statistic(b) on the ``n`` shared clips."""

    difference: float
    lo: Optional[float]
    hi: Optional[float]
    n: int


# ---------------------------------------------------------------- statistics
class Mean:
    """Mean of per-clip scalar values (e.g. CLIPSIM); vectorised over resamples."""

    name = "mean"

    def __call__(self, x: np.ndarray) -> float:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise InputError(f"Mean expects one value per clip (shape [N]), got shape {x.shape}")
        return float(x.mean())

    def weighted(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise InputError(f"Mean expects one value per clip (shape [N]), got shape {x.shape}")
        return (w @ x) / w.sum(axis=1)


def _resolve(statistic: Optional[Statistic], x: np.ndarray) -> Callable[[np.ndarray], float]:
    if statistic is None or statistic == "mean":
        if x.ndim != 1:
            raise InputError(f"the default statistic is the mean of one value per clip, but the input has shape "
                             f"{x.shape}; pass a statistic for features, e.g. FrechetToReference(mu_ref, sigma_ref)")
        return Mean()
    if isinstance(statistic, str):
        raise InputError(f"unknown statistic {statistic!r}; use 'mean' or a callable")
    if not callable(statistic):
        raise TypeError(f"statistic must be callable, got {type(statistic).__name__}")
    return statistic


def _as_rows(values: ArrayLike, what: str = "values_or_features") -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 0:
        raise InputError(f"{what} must hold one entry per clip (shape [N] or [N, D]), got a scalar")
    if x.shape[0] < 2:
        raise InputError(f"{what}: a bootstrap needs at least 2 clips, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.isfinite(x.reshape(x.shape[0], -1)).any(axis=1)))
        raise InputError(f"{what}: {bad} clip(s) have NaN or inf values")
    return x


def _check_args(n_boot: int, alpha: float, interval: str) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise InputError(f"n_boot must be a non-negative integer, got {n_boot!r}")
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha must be between 0 and 1 (0.05 gives a 95% interval), got {alpha!r}")
    if interval not in INTERVALS:
        raise InputError(f"interval must be one of {INTERVALS}, got {interval!r}")


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """Resampled clip indices, [n_boot, n], from ``default_rng(seed)``."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    b = idx.shape[0]
    flat = (idx + n * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)


def clear_memo() -> None:
    """Forget the resample statistics computed so far (benchmarks time them cold)."""
    _MEMO.clear()


def _evaluate(stat: Callable, x: np.ndarray, idx: np.ndarray, counts: Optional[np.ndarray] = None,
              draws: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """The statistic on every resample ``idx`` of the rows of ``x``. ``draws``: the
    (n_boot, seed) that made ``idx``, so a statistic with a ``memo_key`` is computed once
    per (statistic, rows, draws) in this process."""
    key = None
    if draws is not None and getattr(stat, "memo_key", None) is not None:
        key = (stat.memo_key, array_digest(np.asarray(x, dtype=np.float64)), *draws)
        if key in _MEMO:
            _MEMO.move_to_end(key)
            return _MEMO[key].copy()
    if hasattr(stat, "weighted"):
        # a resample as counts per clip: the statistic never copies the drawn rows
        counts = _counts(idx, x.shape[0]) if counts is None else counts
        boots = np.asarray(stat.weighted(x, counts), dtype=np.float64)
    else:
        boots = np.array([float(stat(x[i])) for i in idx], dtype=np.float64)
    if key is not None:
        _MEMO[key] = boots.copy()
        while len(_MEMO) > MEMO_ENTRIES:
            _MEMO.popitem(last=False)
    return boots


def _interval(point: float, boots: np.ndarray, alpha: float, interval: str):
    q_lo, q_hi = np.quantile(boots, [alpha / 2.0, 1.0 - alpha / 2.0])
    if interval == "basic":
        return float(2 * point - q_hi), float(2 * point - q_lo)
    if interval == "bias_corrected":
        bias = float(np.mean(boots)) - point
        return float(q_lo - bias), float(q_hi - bias)
    return float(q_lo), float(q_hi)


def bootstrap_ci(values_or_features: ArrayLike, statistic: Optional[Statistic] = None, n_boot: int = 1000,
                 seed: int = 0, alpha: float = 0.05, interval: str = "percentile") -> Interval:
    """Point estimate and (1 - alpha) bootstrap interval, resampling clips (rows) with replacement.

    ``values_or_features``: [N] per-clip values or [N, D] per-clip features.
    ``statistic``: callable on the rows (default: the mean of [N] values).
    Returns ``Interval(point, lo, hi)``; with ``n_boot=0`` lo and hi are None.
    """
    _check_args(n_boot, alpha, interval)
    x = _as_rows(values_or_features)
    stat = _resolve(statistic, x)
    point = float(stat(x))
    if n_boot == 0:
        return Interval(point, None, None)
    boots = _evaluate(stat, x, bootstrap_indices(x.shape[0], n_boot, seed), draws=(n_boot, seed))
    if not np.all(np.isfinite(boots)):
        raise InputError("the statistic returned NaN or inf on some resamples")
    lo, hi = _interval(point, boots, alpha, interval)
    return Interval(point, lo, hi)


def _sort_keys(keys: set) -> List[Hashable]:
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=repr)


def paired_difference(a_by_key: Mapping[Hashable, Any], b_by_key: Mapping[Hashable, Any],
                      statistic: Optional[Statistic] = None, n_boot: int = 1000, seed: int = 0,
                      alpha: float = 0.05, interval: str = "percentile") -> PairedInterval:
    """statistic(a) - statistic(b) on the clips both runs share, with a paired bootstrap interval.

    ``a_by_key`` / ``b_by_key`` map a clip key (e.g. ``(prompt_index, seed)``)
    to that clip's value or feature vector. Only the common keys are used, and
    every resample draws the SAME clips for both runs, so clip-to-clip
    variation shared by the runs cancels. Identical inputs give exactly 0 with
    a zero-width interval. Returns ``PairedInterval(difference, lo, hi, n)``.
    """
    _check_args(n_boot, alpha, interval)
    if not isinstance(a_by_key, Mapping) or not isinstance(b_by_key, Mapping):
        raise TypeError("paired_difference takes two dicts mapping clip key -> per-clip value or features")
    common = set(a_by_key) & set(b_by_key)
    if not common:
        ex_a = ", ".join(repr(k) for k in list(a_by_key)[:3])
        ex_b = ", ".join(repr(k) for k in list(b_by_key)[:3])
        raise InputError(f"the two runs share no clip keys (a has {len(a_by_key)}: {ex_a or 'none'}...; "
                         f"b has {len(b_by_key)}: {ex_b or 'none'}...); a paired comparison needs the same "
                         f"(prompt, seed) clips in both runs")
    keys = _sort_keys(common)
    xa = _as_rows([a_by_key[k] for k in keys], "a_by_key (common clips)")
    xb = _as_rows([b_by_key[k] for k in keys], "b_by_key (common clips)")
    if xa.shape != xb.shape:
        raise InputError(f"per-clip entries differ in shape between the runs: {xa.shape[1:]} vs {xb.shape[1:]}")
    stat = _resolve(statistic, xa)
    point = float(stat(xa)) - float(stat(xb))
    if n_boot == 0:
        return PairedInterval(point, None, None, len(keys))
    idx = bootstrap_indices(len(keys), n_boot, seed)
    counts = _counts(idx, len(keys)) if hasattr(stat, "weighted") else None   # the same draws for both runs
    diffs = _evaluate(stat, xa, idx, counts, (n_boot, seed)) - _evaluate(stat, xb, idx, counts, (n_boot, seed))
    if not np.all(np.isfinite(diffs)):
        raise InputError("the statistic returned NaN or inf on some resamples")
    lo, hi = _interval(point, diffs, alpha, interval)
    return PairedInterval(point, lo, hi, len(keys))
