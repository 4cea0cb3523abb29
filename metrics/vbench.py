"""VBench: export videos, run the ``vbench`` package, and aggregate its scores.

The harness does not re-implement VBench's dimensions: it calls the installed
``vbench`` 0.1.5 package (installed with ``--no-deps`` by ``make install``: its own pins,
transformers==4.33.2 and numpy<2, break diffusers and open_clip)
and only wraps it so that

* videos are written with VBench's naming, ``{prompt}-{i}.mp4`` (:func:`export_for_vbench`);
* only dimensions whose model files are already in the VBench cache run, and
  VBench can never download anything: every other dimension is skipped with a
  reason saying which files are missing and where VBench fetches them
  (:func:`available_dimensions`, :func:`evaluate`);
* raw per-dimension fractions become VBench's Total / Quality / Semantic scores
  with the normalisation and weights of VBench's ``scripts/constant.py`` and
  ``scripts/cal_final_score.py`` (:func:`aggregate`).

Facts about vbench 0.1.5 this module relies on (read from the installed package):
``VBench(device, full_info_json, output_dir).evaluate(videos_path, name,
prompt_list, dimension_list, local, read_frame, mode)`` writes
``{output_dir}/{name}_eval_results.json`` = ``{dim: [average, [{"video_path",
"video_results"}, ...]]}`` and returns nothing. Model files live under
``$VBENCH_CACHE_DIR`` (default ``~/.cache/vbench``), read once when
``vbench.utils`` is imported, and ``init_submodules`` downloads missing ones with
wget. In ``vbench_standard`` mode videos are found as ``{prompt}-{i}{suffix}``
(i in 0..4) where the suffix is taken from the *first* directory entry, so the
video folder must hold nothing but videos. In ``custom_input`` mode the prompt is
the file name without ``-{i}`` and the suffix (``get_prompt_from_filename``) unless
a ``{file name: prompt}`` map is given; six dimensions need the standard prompts'
extra information and are refused in that mode.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.metadata as md
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from huggingface_hub import constants as hf_constants

from common.errors import InputError, LcmbenchError, MissingInput
from metrics.vbench_assets import (CACHE_FILES, HF_FILES, TORCH_HUB_FILES, DownloadBlocked, check_dimensions,
                                   available_dimensions, static_filter_weights, vbench_cache_dir)
from metrics.vbench_export import (prompt_subset_info, prompts_by_dimension, export_for_vbench, full_info_path,
                                   standard_prompts)
from metrics.vbench_metric import VBenchSetMetric
from metrics.vbench_protocol import (ALL_DIMENSIONS, CUSTOM_INPUT_UNSUPPORTED, MODES, NORMALIZE, QUALITY_DIMENSIONS,
                                     SEMANTIC_DIMENSIONS, STANDARD_VIDEOS_PER_PROMPT, SUMMARIES, VIDEO_SUFFIXES,
                                     VBenchScore, aggregate)
from metrics.vbench_static_filter import FramesTooSmall, Selection, select_for_flickering

__all__ = [  # the public face of VBench in lcmbench: its protocol, files and export with the evaluation
    "ALL_DIMENSIONS", "CACHE_FILES", "CUSTOM_INPUT_UNSUPPORTED", "DownloadBlocked", "HF_FILES", "MODES", "NORMALIZE",
    "QUALITY_DIMENSIONS", "SEMANTIC_DIMENSIONS", "STANDARD_VIDEOS_PER_PROMPT", "SUMMARIES", "TORCH_HUB_FILES",
    "VBenchScore", "VBenchSetMetric", "aggregate", "available_dimensions", "build", "evaluate", "export_for_vbench", "full_info_path",
    "standard_prompts", "vbench_cache_dir"]


# --------------------------------------------------------------------------- evaluate

class _NoSubprocess:
    """Stands in for the subprocess module inside vbench: every call is a download (wget/git/unzip)."""

    CalledProcessError = subprocess.CalledProcessError

    @staticmethod
    def run(cmd, *args, **kwargs):
        raise DownloadBlocked(f"VBench tried to run {' '.join(map(str, cmd))!r} (a download); the harness never "
                              f"lets VBench download: put the file in the VBench cache dir first.")


def _blocked(*args, **kwargs):
    raise DownloadBlocked(f"VBench tried to download {args[0] if args else kwargs}; the harness never lets VBench "
                          f"download: put the file in place first.")


@contextlib.contextmanager
def _offline_vbench(cache: Path):
    """Point every loaded vbench module at ``cache`` and make downloads raise."""
    import torch.hub  # heavy: torch / vbench, only when VBench runs

    saved: List[Tuple[Any, str, Any]] = []

    def patch(obj, attr, value):
        saved.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    # vbench's video loader switches decord's (per-thread, global) bridge to torch: put it back after
    bridge = sys.modules.get("decord.bridge")
    bridge_type = getattr(getattr(bridge, "_CURRENT_BRIDGE", None), "type", "native")
    env_saved = {k: os.environ.get(k) for k in ("VBENCH_CACHE_DIR", "HF_HUB_OFFLINE")}
    os.environ["VBENCH_CACHE_DIR"] = str(cache)
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        try:
            patch(hf_constants, "HF_HUB_OFFLINE", True)
        except ImportError:
            pass
        patch(torch.hub, "download_url_to_file", _blocked)
        for name, mod in list(sys.modules.items()):
            # Only vbench's own modules download (utils, aesthetic_quality); third_party code is left alone.
            if mod is None or not (name == "vbench" or (name.startswith("vbench.") and name.count(".") == 1)):
                continue
            if hasattr(mod, "CACHE_DIR"):
                patch(mod, "CACHE_DIR", str(cache))
            if getattr(mod, "subprocess", None) is not None:
                patch(mod, "subprocess", _NoSubprocess)
            if hasattr(mod, "urlretrieve"):
                patch(mod, "urlretrieve", _blocked)
        # ViCLIP's tokenizer fixes its vocabulary path when first imported (from the cache
        # variable of that moment) and fetches a missing file with wget: aim it at ``cache``
        tokenizer = sys.modules.get("vbench.third_party.ViCLIP.simple_tokenizer")
        if tokenizer is not None:
            patch(tokenizer.SimpleTokenizer.__init__, "__defaults__",
                  (str(cache / "ViCLIP" / "bpe_simple_vocab_16e6.txt.gz"),))
            patch(tokenizer, "subprocess", _NoSubprocess)
        yield
    finally:
        for obj, attr, value in reversed(saved):
            setattr(obj, attr, value)
        bridge = sys.modules.get("decord.bridge")
        if bridge is not None:
            bridge.set_bridge(bridge_type)
        for k, v in env_saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _list_videos(videos_dir: Path, mode: str) -> List[str]:
    if not videos_dir.is_dir():
        raise MissingInput(f"VBench: videos folder '{videos_dir}' does not exist; write it with "
                                f"export_for_vbench first.")
    entries = sorted(os.listdir(videos_dir))
    videos = [e for e in entries if Path(e).suffix.lower() in VIDEO_SUFFIXES and (videos_dir / e).is_file()]
    if not videos:
        raise InputError(f"VBench: no videos ({', '.join(VIDEO_SUFFIXES)}) in '{videos_dir}'.")
    if mode == "vbench_standard":
        # VBench takes the video suffix from the first directory entry.
        others = [e for e in entries if e not in videos]
        suffixes = {Path(v).suffix for v in videos}
        if others or len(suffixes) > 1:
            raise InputError(f"VBench standard mode needs a folder holding only videos of one type, but "
                             f"'{videos_dir}' also has {', '.join((others or sorted(suffixes))[:5])}: VBench takes "
                             f"the suffix from the first directory entry. Move the other files out.")
    return videos


def evaluate(videos_dir: os.PathLike, name: str, dimensions: Sequence[str], mode: str = "vbench_standard",
             out_dir: Optional[os.PathLike] = None, device: Optional[str] = None,
             prompts: Optional[Mapping[str, str]] = None, cache_dir: Optional[os.PathLike] = None,
             require_complete: bool = True) -> Dict[str, Any]:
    """Run VBench on a folder of videos, offline.

    Dimensions whose files are missing are skipped (never downloaded), with the
    reason. ``prompts`` ({file name: prompt}, as :func:`export_for_vbench` returns)
    is for custom_input mode; files not in it use VBench's name rule. In standard
    mode every video the chosen dimensions expect must exist unless
    ``require_complete=False`` (then the counts of missing videos are reported).

    Returns {"scores": {dim: raw fraction}, "per_video": {dim: {file name: value}},
    "skipped": {dim: reason}, "failed": {dim: error}, "n_videos": {dim: n},
    "missing_videos": {dim: n}, "mode", "name", "device", "cache_dir",
    "vbench_version", "results_files": {dim: json path}, "notes": [...],
    "non_standard": {dim: why}, "static_filter": None or {"applied": bool, ...}}.

    temporal_flickering follows VBench's protocol when RAFT's weights are in the VBench
    cache: :mod:`metrics.vbench_static_filter` keeps up to 5 static videos per prompt and
    only those are scored; "static_filter" records each video's flow measures and whether
    it was kept. Without the weights (or with frames too small for RAFT) every video is
    scored and the dimension is listed in "non_standard".
    """
    if mode not in MODES:
        raise InputError(f"VBench: mode must be one of {', '.join(MODES)}, got '{mode}'.")
    if not isinstance(name, str) or not name or "/" in name:
        raise InputError(f"VBench: name must be a non-empty string without '/', got {name!r}.")
    if out_dir is None:
        raise InputError("VBench: out_dir is required (VBench writes its json files there).")
    dims = check_dimensions(dimensions)
    videos_dir = Path(videos_dir)
    cache = vbench_cache_dir(cache_dir)
    if device is None:
        import torch  # heavy: as above
        device = "cuda" if torch.cuda.is_available() else "cpu"

    if mode == "custom_input":
        refused = [d for d in dims if d in CUSTOM_INPUT_UNSUPPORTED]
        if refused:
            raise InputError(f"VBench: {', '.join(refused)} need the standard prompts' extra information and do "
                             f"not run in custom_input mode; use mode='vbench_standard' with VBench's prompts.")
    elif prompts is not None:
        raise InputError("VBench: prompts= is only for custom_input mode; standard mode reads prompts from the "
                         "file names and VBench_full_info.json.")
    videos = _list_videos(videos_dir, mode)

    status = available_dimensions(cache, dims)
    skipped: Dict[str, str] = dict(status["unavailable"])
    runnable = [d for d in dims if d in status["available"]]
    missing_videos: Dict[str, int] = {}
    n_expected: Dict[str, int] = {}

    prompt_list: Any = []
    info_file = full_info_path()
    if mode == "vbench_standard":
        present = set(videos)
        suffix = Path(videos[0]).suffix
        by_dim = prompts_by_dimension()
        problems = []
        for d in list(runnable):
            expected = [f"{p}-{i}{suffix}" for p in by_dim[d] for i in range(STANDARD_VIDEOS_PER_PROMPT)]
            missing = [e for e in expected if e not in present]
            n_expected[d] = len(expected) - len(missing)
            if missing:
                missing_videos[d] = len(missing)
                problems.append(f"{d}: {len(missing)} of {len(expected)} videos missing, e.g. {missing[0]!r}")
            if len(missing) == len(expected):
                runnable.remove(d)
                skipped[d] = f"no videos for this dimension's {len(by_dim[d])} standard prompts in {videos_dir}"
        if problems and require_complete:
            raise InputError("VBench standard mode: missing benchmark videos make the scores incomparable ("
                             + "; ".join(problems) + "). Generate all 5 videos per prompt, or pass "
                             "require_complete=False to score what is there (reported as missing_videos).")
        if problems:
            # VBench warns once per missing video (hundreds of lines for a subset run): hand it
            # a copy of its prompt file holding only the prompts that have videos here
            with_videos = {v.rsplit("-", 1)[0] for v in present}   # "{prompt}-{i}{suffix}"
            info_file = prompt_subset_info(with_videos, Path(out_dir) / f"{name}_prompt_subset_full_info.json")
    else:
        mapping = dict(prompts or {})
        unknown = [k for k in mapping if k not in videos]
        if unknown:
            raise InputError(f"VBench: prompts= names files that are not videos in '{videos_dir}': "
                             f"{', '.join(unknown[:5])}; keys are file names as export_for_vbench returns them.")
        if mapping:
            from_name = re.compile(r"-\d+$")
            prompt_list = {v: mapping.get(v, from_name.sub("", Path(v).stem)) for v in videos}
        for d in runnable:
            n_expected[d] = len(videos)

    # Import each dimension's module now: a missing python dependency is a skip, not a crash;
    # inside the offline block, as some modules read the cache or fetch files on import
    with _offline_vbench(cache):
        for d in list(runnable):
            try:
                importlib.import_module(f"vbench.{d}")
            except Exception as err:  # ImportError or a version clash inside third-party code
                runnable.remove(d)
                skipped[d] = f"importing vbench.{d} failed: {type(err).__name__}: {err}"

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores: Dict[str, float] = {}
    per_video: Dict[str, Dict[str, Any]] = {}
    failed: Dict[str, str] = {}
    notes: List[str] = []
    static: Optional[Selection] = None
    static_record: Optional[Dict[str, Any]] = None
    if "temporal_flickering" in runnable:
        static, static_record, why = _static_selection(videos_dir, videos, mode, prompt_list, out, name, cache,
                                                       device, prompts_by_dim=prompts_by_dimension()
                                                       if mode == "vbench_standard" else None)
        if static is None and static_record.get("failed"):
            runnable.remove("temporal_flickering")
            failed["temporal_flickering"] = why
        elif static is not None:
            notes.extend(static.notes)
            if not static.originals:
                runnable.remove("temporal_flickering")
                skipped["temporal_flickering"] = why
            else:
                n_expected["temporal_flickering"] = len(static.originals)
    files: Dict[str, str] = {}
    n_videos: Dict[str, int] = {}
    if runnable:
        from vbench import VBench  # heavy: as above

        with _offline_vbench(cache):
            for d in runnable:
                run_name = f"{name}_{d}"
                result_file = out / f"{run_name}_eval_results.json"
                if result_file.exists():
                    result_file.unlink()  # never read a stale result back
                where, listed, info = videos_dir, prompt_list, info_file
                if d == "temporal_flickering" and static is not None:
                    where, listed, info = _static_inputs(static, mode, prompt_list, out, name, info_file)
                try:
                    VBench(device, str(info), str(out)).evaluate(
                        videos_path=str(where), name=run_name, prompt_list=listed, dimension_list=[d],
                        local=True, read_frame=False, mode=mode)
                    with open(result_file, encoding="utf-8") as f:
                        avg, rows = json.load(f)[d]
                except DownloadBlocked as err:
                    skipped[d] = str(err)
                    continue
                except Exception as err:
                    failed[d] = (f"VBench's {d} raised {type(err).__name__}: {err} (a corrupt or incompatible "
                                 f"model file under {cache}, or a package version clash)")
                    continue
                if avg is None or not math.isfinite(float(avg)):
                    failed[d] = f"VBench returned {avg!r} (no readable videos?)"
                    continue
                scores[d] = float(avg)
                per_video[d] = {Path(r["video_path"]).name: r["video_results"] for r in rows}
                if d == "temporal_flickering" and static is not None:   # report the files given, not the links
                    per_video[d] = {static.originals.get(k, k): v for k, v in per_video[d].items()}
                n_videos[d] = len(rows)
                files[d] = str(result_file)
                if d in n_expected and len(rows) < n_expected[d]:
                    failed_reads = n_expected[d] - len(rows)
                    missing_videos[d] = missing_videos.get(d, 0) + failed_reads

    non_standard = {}
    if "temporal_flickering" in scores and static is None:
        # VBench's standard protocol samples more videos per prompt and keeps only the static
        # ones (its RAFT static filter, a script outside the package); without it the figure
        # also counts motion as flicker and is not VBench's number
        non_standard["temporal_flickering"] = (
            "scored on every video given: VBench's RAFT static filter (keep only static videos) was not "
            "applied, so motion counts as flicker; not comparable to published temporal_flickering")
        notes.append("temporal_flickering: " + non_standard["temporal_flickering"])
        if static_record and static_record.get("reason"):
            notes.append("temporal_flickering: static filter not applied: " + static_record["reason"])

    return {
        "scores": scores, "per_video": per_video, "skipped": skipped, "failed": failed,
        "n_videos": n_videos, "missing_videos": missing_videos, "mode": mode, "name": name,
        "device": str(device), "cache_dir": str(cache), "vbench_version": md.version("vbench"),
        "results_files": files, "notes": notes, "non_standard": non_standard, "static_filter": static_record,
    }


def _static_selection(videos_dir: Path, videos: List[str], mode: str, prompt_list: Any, out: Path, name: str,
                      cache: Path, device: str, prompts_by_dim: Optional[Mapping[str, List[str]]]
                      ) -> Tuple[Optional[Selection], Dict[str, Any], str]:
    """Run VBench's static filter for temporal_flickering when its RAFT weights are here.

    Returns (selection or None, the record for the result, why: the skip or failure reason).
    """
    weights = static_filter_weights(cache)
    if not weights.is_file():
        return None, {"applied": False, "reason": f"RAFT weights {weights} are not in the VBench cache"}, ""
    if prompts_by_dim is not None:
        # standard mode: the videos of temporal_flickering's prompts, any index ("{prompt}-{i}{suffix}")
        wanted = set(prompts_by_dim["temporal_flickering"])
        prompt_of = {v: v.rsplit("-", 1)[0] for v in videos
                     if v.rsplit("-", 1)[0] in wanted and Path(v).stem.rsplit("-", 1)[-1].isdigit()}
    else:
        from_name = re.compile(r"-\d+$")
        prompt_of = {v: (prompt_list or {}).get(v) or from_name.sub("", Path(v).stem) for v in videos}
    try:
        sel = select_for_flickering(videos_dir, prompt_of, out / f"{name}_static_videos", weights, device,
                                    renumber=prompts_by_dim is not None)
    except FramesTooSmall as err:
        return None, {"applied": False, "reason": str(err)}, ""
    except Exception as err:  # a bad weights file or video, or a version clash in RAFT's code
        why = str(err) if isinstance(err, LcmbenchError) else f"{type(err).__name__}: {err}"
        return None, {"applied": False, "failed": True, "reason": why}, f"static filter: {why}"
    if not sel.originals:
        return sel, sel.record, (f"the static filter kept none of the {len(prompt_of)} videos: all of them move "
                                 f"(flow above the threshold; see static_filter in the result)")
    return sel, sel.record, ""


def _static_inputs(static: Selection, mode: str, prompt_list: Any, out: Path, name: str,
                   info_file: Path) -> Tuple[Path, Any, Path]:
    """Folder, prompt list and prompt file VBench reads for temporal_flickering on the static videos."""
    if mode != "vbench_standard":
        # a prompt map must name exactly the videos in the folder
        return static.folder, ({k: static.prompts[k] for k in static.originals} if prompt_list else []), info_file
    with_videos = set(static.prompts.values())
    return static.folder, prompt_list, prompt_subset_info(with_videos, out / f"{name}_static_full_info.json")


# --------------------------------------------------------------------------- build

def build(dimensions: Sequence[str] = ("temporal_flickering",), nfe: Optional[int] = None, mode: str = "custom_input",
          allow_missing: bool = True, cache_dir: Optional[str] = None, device: Optional[str] = None,
          require_complete: bool = False) -> VBenchSetMetric:
    """Build the VBench set metric (registry entry ``metrics.build("vbench", ...)``): the
    options of ``metrics.vbench.options`` (:class:`metrics.vbench_plugin.VBenchOptions`),
    the device VBench's models run on, and ``require_complete`` (standard mode: refuse
    missing videos of the chosen dimensions' prompts instead of scoring a subset)."""
    check_dimensions(dimensions)
    return VBenchSetMetric(evaluate, dimensions, mode=mode, nfe=nfe, allow_missing=allow_missing,
                           cache_dir=cache_dir, device=device, require_complete=require_complete)
