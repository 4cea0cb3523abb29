"""VBench as a plug-in of the set kind: its facts (on :class:`metrics.vbench_protocol.VBenchScore`),
options, files, checks and cost. The heavy part (the vbench package) is :mod:`metrics.vbench`."""
from __future__ import annotations

import os
import re
from dataclasses import field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from common.checks import AssetCheck, Checked, Problem
from metrics import vbench_split
from metrics.options import options_schema
from metrics.plugin import Cost, FileNeed, Metric, RunFacts
from metrics.vbench_assets import (CACHE_FILES, HF_FILES, OPTIONAL_CACHE_FILES, TORCH_HUB_FILES,
                                   available_dimensions, static_filter_weights, torch_hub_dir, vbench_cache_dir)
from metrics.vbench_export import standard_prompts
from metrics.vbench_protocol import (ALL_DIMENSIONS, MODES, STANDARD_PROMPT_SET, STANDARD_VIDEOS_PER_PROMPT,
                                     VBenchScore)
from metrics.vbench_static_filter import raft_supports

# lossless H.264 crf 0 (metrics.video_io.write_mp4, crf 0) measured 0.8-2.4 bits per pixel
VBENCH_MP4_BITS_PER_PIXEL = 2.5
STANDARD_MODE, CUSTOM_MODE = MODES
CACHE_ENV = "VBENCH_CACHE_DIR"   # moves the VBench cache (metrics.vbench_assets.vbench_cache_dir)


@options_schema
class VBenchOptions:
    """metrics.vbench.options."""
    dimensions: List[str] = field(default_factory=lambda: ["temporal_flickering"])
    nfe: Optional[int] = None               # which step count is scored (None: the largest in protocol.nfe)
    mode: str = "custom_input"              # custom_input (our prompts) | vbench_standard (VBench's prompt suite)
    allow_missing: bool = True              # Total/Quality/Semantic over the dimensions that ran, marked partial
    cache_dir: Optional[str] = None         # VBench weights (default $VBENCH_CACHE_DIR or ~/.cache/vbench)


class VBench(VBenchScore, Metric):
    kind = "set"
    packages = ("vbench",)
    contract_options = {"dimensions": ["temporal_flickering"]}   # needs no model file
    contract_variant = None
    section = "vbench"
    builder = "metrics.vbench:build"
    options_schema = VBenchOptions
    unit = " (%)"

    @classmethod
    def row_metrics(cls):
        return cls.metrics()

    @classmethod
    def resolve_options(cls, options: Mapping[str, Any], run: RunFacts) -> Dict[str, Any]:
        """A run of the whole standard suite (no prompt subset, 5 videos per prompt) refuses
        missing videos instead of scoring a subset; a subset is scored and marked partial."""
        complete = not run.subset and run.videos_per_prompt >= STANDARD_VIDEOS_PER_PROMPT
        return {**options, "require_complete": complete}

    @classmethod
    def _option(cls, name: str) -> str:
        return f"metrics.{cls.name}.options.{name}"

    @classmethod
    def cache_roots(cls) -> Dict[str, Tuple[str, Optional[str]]]:
        return {"vbench": (str(vbench_cache_dir()), CACHE_ENV), "torch_hub": (str(torch_hub_dir()), None)}

    @classmethod
    def settings_problems(cls, options: Mapping[str, Any], run: RunFacts) -> List[str]:
        """VBench's standard mode needs its own prompt suite and at most 5 videos per prompt;
        the scored step count must be one the run makes."""
        mode = options.get("mode", CUSTOM_MODE)
        standard = run.prompt_set == STANDARD_PROMPT_SET
        problems = []
        if mode == STANDARD_MODE and not standard:
            problems.append(f"{cls._option('mode')}={STANDARD_MODE} scores VBench's own prompts, but "
                            f"protocol.prompt_set={run.prompt_set} makes UCF-101 clips: use experiment=vbench (or "
                            f"protocol.prompt_set={STANDARD_PROMPT_SET}), or {cls._option('mode')}={CUSTOM_MODE} "
                            f"to score these clips.")
        if standard and mode == STANDARD_MODE and run.videos_per_prompt > STANDARD_VIDEOS_PER_PROMPT:
            problems.append(f"VBench's standard suite reads {STANDARD_VIDEOS_PER_PROMPT} videos per prompt (indices "
                            f"0..{STANDARD_VIDEOS_PER_PROMPT - 1}), but protocol.videos_per_prompt="
                            f"{run.videos_per_prompt}: set it to {STANDARD_VIDEOS_PER_PROMPT}.")
        nfe = options.get("nfe")
        if nfe is not None and int(nfe) not in run.nfes:
            problems.append(f"{cls._option('nfe')}={nfe} is not one of protocol.nfe={list(run.nfes)}: set it to one "
                            f"of them, or leave it unset (the largest).")
        return problems

    @classmethod
    def files(cls, options: Mapping[str, Any], run: RunFacts) -> List[FileNeed]:
        """The model files of the asked dimensions: in the VBench cache (plain URLs or manual
        steps), the torch hub cache and the Hugging Face cache. Each is optional: a dimension
        without its files is skipped or refused by :meth:`extra_checks`."""
        opts = cls.parse(options)
        cache = vbench_cache_dir(opts.cache_dir)
        setting = cls._option("cache_dir")
        out: List[FileNeed] = []
        seen = set()
        for dim in opts.dimensions or ALL_DIMENSIONS:
            for rel, source in CACHE_FILES.get(dim, []):
                target = os.path.join(str(cache), rel)
                if target not in seen:
                    seen.add(target)
                    url = source if re.fullmatch(r"https://\S+", source) else None
                    out.append(FileNeed(f"VBench {rel}", target, setting, root="vbench", url=url, required=False,
                                        checked_by_metric=True, how=f"VBench {dim} gets it by: {source}"))
            # the static filter's RAFT weights, where the frames are large enough for RAFT to run
            for rel, source in OPTIONAL_CACHE_FILES.get(dim, []) if raft_supports(run.height, run.width) else []:
                target = os.path.join(str(cache), rel)
                if target not in seen:
                    seen.add(target)
                    url = source if re.fullmatch(r"https://\S+", source) else None
                    out.append(FileNeed(f"VBench {rel}", target, setting, root="vbench", url=url, required=False,
                                        checked_by_metric=True,
                                        how=f"VBench's static filter for {dim} reads it; get it by: {source}"))
            for rel, source in TORCH_HUB_FILES.get(dim, []):
                target = os.path.join(str(torch_hub_dir()), rel)
                if target not in seen:
                    seen.add(target)
                    out.append(FileNeed(f"torch hub {rel}", target, setting, root="torch_hub", url=source,
                                        required=False, checked_by_metric=True))
            for repo, names in HF_FILES.get(dim, []):
                if (repo, names) not in seen:
                    seen.add((repo, names))
                    out.append(FileNeed(f"VBench {dim} {repo}", None, setting, required=False, checked_by_metric=True,
                                        hub=(repo, (tuple(names),), None, ("config.json", "tokenizer_config.json"))))
        return out

    @classmethod
    def extra_checks(cls, options: Mapping[str, Any], run: RunFacts) -> Checked:
        """Which asked dimensions can run offline here: the others are skipped (allow_missing,
        a note) or a problem."""
        out = Checked()
        try:
            opts = cls.parse(options)
        except ValueError:
            return out   # Metric.check reports it
        try:
            found = available_dimensions(opts.cache_dir, opts.dimensions)
        except ValueError as err:
            out.problems.append(Problem("config", str(err), f"Fix {cls._option('dimensions')}."))
            return out
        for dim in found["available"]:
            out.assets.append(AssetCheck("metric", f"VBench {dim}", found["cache_dir"], "ok", found["cache_dir"]))
        if opts.allow_missing and found["unavailable"]:
            # the run reports VBench as partial over the dimensions that ran; what each
            # skipped dimension needs is on its [missing] line
            skipped = list(found["unavailable"])
            out.notes.append(f"VBench dimension{'s' if len(skipped) > 1 else ''} {', '.join(skipped)} will be "
                             f"skipped ({cls._option('allow_missing')}=true, the VBench scores are then partial); "
                             f"the [missing] lines above say what each needs.")
        flicker = "temporal_flickering"
        if flicker in found["available"] and not raft_supports(run.height, run.width):
            out.notes.append(f"VBench {flicker} will be scored on every video and marked non-standard (§): "
                             f"{run.height}x{run.width} frames are too small for its static filter's RAFT.")
        elif flicker in found["available"] and not static_filter_weights(opts.cache_dir).is_file():
            pool = run.videos_by_dimension.get(flicker, 0)
            out.notes.append(
                f"VBench {flicker} will be scored on every video and marked non-standard (§): its static filter "
                f"needs RAFT's weights at {static_filter_weights(opts.cache_dir)} (`lcmbench prefetch` fetches them)"
                + (f"; without them the {pool}-video pool of its prompts is made but not used "
                   f"(protocol.videos_per_prompt_by_dimension)" if pool > run.videos_per_prompt else "") + ".")
        for dim, why in found["unavailable"].items():
            out.assets.append(AssetCheck("metric", f"VBench {dim}", found["cache_dir"], "missing", found["cache_dir"],
                                         detail=why))
            if not opts.allow_missing:
                out.problems.append(Problem(
                    "metric", f"VBench dimension {dim} cannot run offline: {why}.",
                    f"Fetch those files into the VBench cache (`python -m bench.prefetch ...` fetches the plain "
                    f"URLs), drop the dimension from {cls._option('dimensions')}, or set "
                    f"{cls._option('allow_missing')}=true."))
        return out

    @classmethod
    def cost(cls, options: Mapping[str, Any], run: RunFacts) -> Cost:
        """Each scored clip is exported once more as a lossless mp4 for the vbench package."""
        return Cost(export_bytes_per_clip=int(run.num_frames * run.height * run.width * VBENCH_MP4_BITS_PER_PIXEL / 8))

    @classmethod
    def scoring_seconds(cls, options: Mapping[str, Any], run: RunFacts, methods: int) -> Dict[str, float]:
        """Seconds per dimension to score this run's videos (one step count, every method) on
        one H100, from the estimates of :data:`metrics.vbench_split.DIMENSION_SECONDS`, model
        loading excluded. Standard mode reads each dimension's own prompts, 5 videos each."""
        opts = cls.parse(options)
        dims = list(opts.dimensions or ALL_DIMENSIONS)
        videos = {d: run.clips_per_cell for d in dims}
        if opts.mode == STANDARD_MODE and not run.subset:
            per_prompt = min(run.videos_per_prompt, STANDARD_VIDEOS_PER_PROMPT)
            videos = {d: 0 for d in dims}
            for item in standard_prompts(distinct=True):
                for d in item["dimensions"]:
                    if d in videos:
                        videos[d] += per_prompt
        return {d: methods * n * vbench_split.video_seconds(d, run.num_frames) for d, n in videos.items()}

    @classmethod
    def worker_seconds(cls, parts: Mapping[str, float], workers: int, speed: float = 1.0) -> List[float]:
        """Seconds of each of ``workers`` workers scoring ``parts`` ({dimension: seconds}) in shares."""
        return vbench_split.balance(parts, workers, speed)

    @classmethod
    def frames_nfe(cls, options: Mapping[str, Any], run: RunFacts) -> Optional[int]:
        nfe = options.get("nfe")
        if nfe is not None:
            return int(nfe)
        return max(run.nfes) if run.nfes else None
