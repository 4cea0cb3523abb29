"""Preflight: check everything an experiment needs and print its plan, before any
model is built.

    python -m bench.preflight experiment=table1 [key=value ...]
    python run_bench.py experiment=table1 'stages=[preflight]'

``preflight(cfg, run_dir)`` resolves every weight of every method (Hugging Face cache
or local path; nothing is downloaded, nothing is built), every metric asset (I3D file
and its sha256, the CLIP weights in the HF cache, VBench model files), the prompt set
and its sha256, the real-video dataset listing, and the free disk against what the run
will write. The returned :class:`PreflightReport` holds the plan (clips, UNet
evaluations, FLOPs, time, disk) and every problem found, each with what to do;
:func:`format_plan` renders it. The caller stops before building anything when
``report.ok`` is false (:func:`check` raises :class:`PreflightError`).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import metrics as metric_registry
from bench.net.manifest import verify_manifest
from bench.net.offline import FLAG_ENV, requested as offline_requested
from bench.plan import checkpoints
from bench.plan import protocol
from bench.plan import shard as shard_mod
from bench.plan.config import HUGE_PLAN_GPU, HUGE_PLAN_S, STAGES, compose, get
from bench.plan.description import run_description
from bench.plan.metric_settings import enabled_metrics, run_facts
from bench.preflight.assets import prefetch_fix, check_hub, check_local, metric_hub_needs, weight_needs
from bench.preflight.checks import check_prompts
from bench.preflight.estimates import (existing_parent, compute_tflop, detect_device, estimate_disk, estimate_time,
                                       harness_seconds, method_costs)
from bench.preflight.plan_text import format_duration, format_bytes, format_plan
from bench.preflight.report import AssetCheck, Plan, PreflightError, PreflightReport, Problem
from common.names import env_flag_problem
from common.paths import what_is
from models.registry import WEIGHT_MODES
from models.tiny import open_clip_bpe_file
from models.weights import hub_cache_dir

__all__ = ["PreflightError", "PreflightReport", "check", "format_plan", "main", "preflight"]


def preflight(cfg: Any, run_dir: Optional[str | os.PathLike] = None) -> PreflightReport:
    """Check everything the composed experiment config needs; build nothing, fetch nothing."""
    started = time.perf_counter()
    experiment = str(get(cfg, "experiment", "?"))
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / experiment
    # what this run does (overrides included), not the experiment file's text
    described = run_description(cfg) if get(cfg, "protocol", None) is not None else str(get(cfg, "description", ""))
    report = PreflightReport(experiment, described, str(run_dir),
                             offline_requested(cfg), None)
    pre = get(cfg, "preflight", {}) or {}

    # -- config
    for flag in FLAG_ENV:
        problem = env_flag_problem(flag)
        if problem:
            what, fix = problem.split(": ", 1)
            report.problems.append(Problem("config", what + ".", fix[0].upper() + fix[1:]))
    stages = list(get(cfg, "stages", []) or [])
    bad = [s for s in stages if s not in STAGES]
    if bad:
        report.problems.append(Problem("config", f"Unknown stage(s) {bad}.", f"Use stages from: {', '.join(STAGES)}."))
    weights = str(get(cfg, "weights", "?"))
    if weights not in WEIGHT_MODES:
        report.problems.append(Problem("config", f"weights={weights} is not a weight mode.",
                                       f"Use one of: {', '.join(WEIGHT_MODES)}."))

    # -- device, prompts, protocol size
    device, dtype, dev_name = detect_device(cfg, report)
    prompts = check_prompts(cfg, report)
    p = cfg.protocol
    nfes = [int(n) for n in (get(p, "nfe", []) or [])]
    if not nfes or any(n < 1 for n in nfes):
        report.problems.append(Problem("config", f"protocol.nfe={nfes} must be a non-empty list of positive "
                                                 f"step counts.", "Set e.g. protocol.nfe=[1,2,4,8]."))
        nfes = [n for n in nfes if n >= 1]
    videos = int(get(p, "videos_per_prompt", 0))
    if videos < 1:
        report.problems.append(Problem("config", f"protocol.videos_per_prompt={videos} must be >= 1.",
                                       "Set protocol.videos_per_prompt to 1 or more."))
        videos = max(videos, 0)
    f, h, w = int(p.num_frames), int(p.height), int(p.width)
    if h % 8 or w % 8:
        report.problems.append(Problem("config", f"protocol.height/width {h}x{w} are not multiples of 8 "
                                                 f"(the VAE's factor).", "Use e.g. 512x512."))

    # -- weights
    needs = weight_needs(cfg)
    report.problems += needs.problems
    report.problems += [Problem("weights", what, fix) for what, fix in checkpoints.problems(cfg)]
    # (prompt, seed) pairs per (method, NFE): a pool (videos_per_prompt_by_dimension) gives some prompts more
    pools = get(p, "videos_per_prompt_by_dimension", {}) or {}
    per_cell = protocol.clip_count(prompts, videos, pools) if videos else 0
    pooled = protocol.pooled_classes(prompts, videos, pools) if videos else []
    run = run_facts(cfg, clips_per_cell=per_cell)
    unknown: List[Tuple[str, str]] = []
    metrics_on = enabled_metrics(cfg, unknown)
    report.problems += [Problem("config", what, fix) for what, fix in unknown]
    plugins = {name: metric_registry.plugin(name) for name in metrics_on}
    declared = {}
    for name, options in metrics_on.items():
        try:   # the Hub files preflight checks here, with the weights; the rest are the metric's check
            declared[name] = [n for n in plugins[name].files(options, run) if not n.checked_by_metric]
        except ValueError:
            declared[name] = []   # the metric's check reports it
    metric_hub = metric_hub_needs(needs, declared)
    verify = bool(get(pre, "verify_hashes", False))
    cache = hub_cache_dir()
    for need in needs.hub.values():
        asset, problems = check_hub(need, cache, verify, cfg)
        declared_by = metric_hub.get((need.repo, need.revision))
        if declared_by is not None and all(user.startswith("metrics.") for user in need.users):
            asset.area = "metric"
            for prob in problems:
                prob.area = "metric"
                prob.fix = prefetch_fix(cfg) + f", or set {declared_by.setting}=PATH."
        report.assets.append(asset)
        report.problems += problems
    for need in needs.local:
        asset, problems = check_local(need)
        report.assets.append(asset)
        report.problems += problems
    if weights in ("tiny", "random"):
        try:
            bpe = open_clip_bpe_file()
            report.assets.append(AssetCheck("weights", "CLIP BPE merges (offline tokenizer)", "open_clip", "ok",
                                            str(bpe), bpe.stat().st_size,
                                            detail=f"{weights} weights: built from config, nothing to fetch"))
        except (RuntimeError, FileNotFoundError) as err:
            report.problems.append(Problem("weights", str(err).split(";")[0] + ".",
                                           "pip install open-clip-torch==3.3.0."))

    # -- metrics: their settings, files and own checks
    for name, options in metrics_on.items():
        for msg in plugins[name].settings_problems(options, run):
            report.problems.append(Problem("config", msg, "Change the settings named above."))
        checked = plugins[name].check(options, run)
        # metrics on another's files (KVD, FVD-inf on FVD's detector and reference) find the
        # same asset and the same problem: each is reported once
        seen_assets = {(a.name, a.location) for a in report.assets}
        seen_problems = {p.what for p in report.problems}
        report.assets += [a for a in checked.assets if (a.name, a.location) not in seen_assets]
        report.problems += [p for p in checked.problems if p.what not in seen_problems]
        report.notes += [n for n in checked.notes if n not in report.notes]
    metric_costs = {name: plugins[name].cost(options, run) for name, options in metrics_on.items()}
    frame_nfes = {plugins[name].frames_nfe(options, run) for name, options in metrics_on.items()} - {None}

    # -- a prefetch manifest, when given
    if get(pre, "manifest"):
        for what, fix in verify_manifest(str(pre.manifest), full_hash=verify):
            report.problems.append(Problem("manifest", what, fix))

    # -- cache dir must take the tokenizer files, LoRA and reference statistics
    cache_dir = Path(os.path.expanduser(str(cfg.cache_dir)))
    parent = existing_parent(cache_dir)
    if not parent.is_dir():   # /dev/null/x: os.access passes, the first write fails with Errno 20
        report.problems.append(Problem("disk", f"cache_dir {cache_dir} cannot be created: {parent} is "
                                               f"{what_is(parent)}, not a directory.",
                                       "Set cache_dir=PATH (or LCMBENCH_CACHE) to a folder, or a path one can "
                                       "be created at."))
    elif not os.access(parent, os.W_OK):
        report.problems.append(Problem("disk", f"cache_dir {cache_dir} cannot be created or written ({parent} is "
                                               f"read-only).", "Set cache_dir=PATH (or LCMBENCH_CACHE) to a writable "
                                                               "folder."))
    run_parent = existing_parent(run_dir)
    if not os.access(run_parent, os.W_OK):
        report.problems.append(Problem("disk", f"run directory {run_dir} cannot be created ({run_parent} is "
                                               f"read-only).", "Choose another hydra.run.dir."))

    # -- the plan
    costs = method_costs(needs.specs, nfes, per_cell, 1)
    clips = sum(c.clips for c in costs)
    tflop = compute_tflop(costs, f, h, w, metric_costs, clips)
    time_on = get(pre, "time_on")
    est_device, est_dtype, est_name = device, dtype, dev_name
    if time_on:   # estimate for another machine: auto dtype there is fp16 unless it is a CPU
        est_device = "cpu" if "cpu" in str(time_on).lower() else "cuda"
        est_name = str(time_on)
        if str(cfg.runner.dtype) == "auto":
            est_dtype = "float32" if est_device == "cpu" else "float16"
    seconds, basis, stage_s = estimate_time(cfg, costs, tflop, est_device, est_dtype, est_name, f, h, w)
    if seconds is not None:   # the harness's own work adds to the device's
        harness = harness_seconds(cfg, costs, clips, f, h, w, metric_costs, needs.specs)
        stage_s.update(harness)
        seconds += sum(harness.values())
    huge_s, huge_on = seconds, est_name
    if est_device == "cpu" and weights == "pretrained" and not get(pre, "allow_huge", False):
        # full-size weights are run on a GPU (a CPU estimate of Table 1 is years): time the bound on one
        huge_s, _, _ = estimate_time(cfg, costs, tflop, "cuda", "float16", HUGE_PLAN_GPU, f, h, w)
        huge_on = f"one {HUGE_PLAN_GPU}"
    if huge_s is not None and huge_s > HUGE_PLAN_S and not get(pre, "allow_huge", False):
        report.problems.append(Problem(
            "config", f"The plan is {clips:,} clips, estimated at ~{format_duration(huge_s)} on {huge_on}: more than "
                      f"a year of device time, which is more often a typo (protocol.videos_per_prompt, num_classes, "
                      f"nfe) "
                      f"than a plan.", "Check those settings; to run it as it is, set preflight.allow_huge=true."))
    generates = "generate" in stages
    longest = max(prompts.captions, key=len) if prompts.captions else ""
    disk = estimate_disk(cfg, clips, len(costs) * len(nfes), longest, metric_costs, run_dir, len(frame_nfes)) \
        if generates else \
        {"total": 0, "free": None, "filesystem": str(existing_parent(run_dir)), "already_stored": 0}
    margin = float(get(pre, "disk_margin", 0.1))
    if generates and disk["free"] is not None and disk["free"] < disk["total"] * (1 + margin):
        report.problems.append(Problem(
            "disk", f"The run writes about {format_bytes(disk['total'])} under {run_dir} but {disk['filesystem']} has "
                    f"{format_bytes(disk['free'])} free (asked: {margin:.0%} margin).",
            "Free space, point hydra.run.dir at a bigger disk, or turn off runner.save_frames / runner.save_videos."))
    if device == "cpu" and weights == "pretrained" and generates and clips > 100 and not time_on:
        report.notes.append(f"{clips:,} full-size clips on the CPU: see the time estimate; a GPU is expected "
                            f"(runner.device=auto picks one when visible).")
    report.plan = Plan(
        stages=stages, generates=generates, weights=weights, methods=costs, nfe=nfes, prompts=len(prompts.classes),
        videos_per_prompt=videos, pooled_prompts=len(pooled), pool_videos=(per_cell - len(prompts.classes) * videos),
        num_frames=f, height=h, width=w, clips=clips, settings=len(costs) * len(nfes),
        unet_evals_per_prompt_seed=sum(c.evals_per_prompt_seed for c in costs),
        unet_evals=sum(c.unet_evals for c in costs), tflop=tflop, device=est_device,
        device_name=est_name, dtype=est_dtype, time_s=seconds, time_basis=basis, time_stages=stage_s,
        disk_bytes=int(disk["total"]), disk_detail=disk, disk_free=disk.get("free"),
        disk_path=disk.get("filesystem", ""), already_stored=int(disk.get("already_stored", 0)),
        detected=f"{dev_name} ({device}, {dtype})" if time_on else "", processes=_processes(cfg))
    report.seconds = time.perf_counter() - started
    return report


def _processes(cfg: Any) -> int:
    """How many processes share the clips (torchrun ranks, srun tasks, shard.count): each
    makes about that fraction of them. A bad shard setting counts as one; the run names it."""
    node = get(cfg, "shard", {}) or {}
    try:
        return shard_mod.detect(get(node, "index"), get(node, "count"), bool(get(node, "use_env", True))).count
    except ValueError:
        return 1


def check(cfg: Any, run_dir: Optional[str | os.PathLike] = None, echo: bool = True,
          save: bool = True) -> PreflightReport:
    """preflight(), print the plan (echo), save it as <run_dir>/preflight.json when a
    run_dir is given and ``save``, and raise PreflightError (a ValueError) when anything
    is wrong. The pipeline passes save=False and writes the report only once the run
    starts, so a refused start leaves an existing run directory untouched."""
    report = preflight(cfg, run_dir)
    if echo:
        print(format_plan(report), flush=True)
    if run_dir is not None and save:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / "preflight.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    if not report.ok:
        raise PreflightError(report, listed=echo)
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.preflight",
                                 description="Check an experiment's weights, metric assets, prompts, dataset and "
                                             "disk, and print its plan. Nothing is built or downloaded.",
                                 epilog="Other arguments are Hydra overrides, e.g. experiment=table1 "
                                        "preflight.time_on=H100.")
    ap.add_argument("--run-dir", default=None, help="where the run would write (default runs/<experiment>)")
    ap.add_argument("--json", default=None, help="also write the report as JSON here")
    args, overrides = ap.parse_known_args(argv)
    bad = [o for o in overrides if o.startswith("--")]
    if bad:
        ap.error(f"unknown option(s) {bad}")
    try:
        cfg = compose(overrides)
    except Exception as err:  # a Hydra composition error is a user error: one line
        print(f"lcmbench preflight: error: {err}", file=sys.stderr)
        return 2
    checkpoints.expand(cfg)
    report = preflight(cfg, args.run_dir)
    print(format_plan(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2, default=str))
    return 0 if report.ok else 2



if __name__ == "__main__":
    sys.exit(main())
