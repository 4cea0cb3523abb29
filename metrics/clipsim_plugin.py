"""CLIPSIM as a plug-in: its facts, options, files, checks and cost. The heavy part
(open_clip) is :mod:`metrics.clipsim`."""
from __future__ import annotations

import os
from typing import Any, List, Mapping

from common.checks import Checked, Problem
from metrics.clipsim import DEFAULT_MODEL, DEFAULT_PRETRAINED, CLIPSimOptions, CLIPSimScore, hub_location
from metrics.plugin import Cost, FileNeed, Metric, RunFacts

# docs/speed.md "FLOPs per unit of work" (multiply-adds count 2 FLOPs)
CLIP_H14_TFLOP_PER_FRAME = 0.335   # CLIP ViT-H/14 image tower, one 224x224 frame (every frame is resized to it)
WEIGHT_MODES = ("pretrained", "tiny")


class CLIPSim(CLIPSimScore, Metric):
    kind = "clip"
    packages = ("open_clip_torch",)
    builder = "metrics.clipsim:build"
    contract_options = {"weights": "tiny"}
    contract_variant = {"weights": "tiny", "seed": 1}
    options_schema = CLIPSimOptions

    @classmethod
    def files(cls, options: Mapping[str, Any], run: RunFacts) -> List[FileNeed]:
        """Pretrained weights: the user's file or folder, else the open_clip tag's files on the Hub."""
        if options.get("weights", "pretrained") != "pretrained":
            return []
        setting = f"metrics.{cls.name}.options.path"
        if options.get("path") is not None:
            return [FileNeed("CLIP weights (path)", os.path.expanduser(str(options["path"])), setting,
                             user_file=True, how=f"fix {setting}, or drop it to use the HF cache")]
        model = options.get("model", DEFAULT_MODEL)
        pretrained = options.get("pretrained", DEFAULT_PRETRAINED)
        repo, names = hub_location(model, pretrained)
        return [FileNeed(f"CLIP weights {model} {pretrained}", None, setting,
                         hub=(repo, (tuple(names),), None, ("open_clip_config.json",)))]

    @classmethod
    def extra_checks(cls, options: Mapping[str, Any], run: RunFacts) -> Checked:
        out = Checked()
        weights = options.get("weights", "pretrained")
        if weights not in WEIGHT_MODES:
            out.problems.append(Problem("metric", f"metrics.{cls.name}.options.weights='{weights}' is not a mode.",
                                        f"Use {' or '.join(WEIGHT_MODES)}."))
        return out

    @classmethod
    def cost(cls, options: Mapping[str, Any], run: RunFacts) -> Cost:
        model = options.get("model", DEFAULT_MODEL)
        tflop = 0.0   # only the paper's image tower is counted; a tiny or other tower is left out
        if options.get("weights", "pretrained") == "pretrained" and model == "ViT-H-14":
            tflop = run.num_frames * CLIP_H14_TFLOP_PER_FRAME
        key = f"clipsim/{model}-{options.get('pretrained', DEFAULT_PRETRAINED)}"
        return Cost(tflop_per_clip=tflop, features={key: ((run.num_frames,), "float64")})
