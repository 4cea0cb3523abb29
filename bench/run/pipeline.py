"""The stages of a run: preflight -> generate -> score -> report.

Data flows one way: the composed config gives the protocol (which clips), the model
registry says how to make them, the runner makes and stores them with their metric
features, the metrics score the store, and results/ renders what was scored.
"""
from __future__ import annotations

import logging
import time
import uuid
import warnings
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch   # loaded by models.device anyway
from omegaconf import DictConfig, OmegaConf

import metrics as metric_registry
import models
from common.errors import InputError
from common.names import did_you_mean
from models.device import device_info, resolve_device_dtype
from models.fast import pixel_settings
from models.registry import resolve_spec
from models.schedulers import resolve_sampler
from models.specs import ModelSpec, SamplerSpec, step_specific
from models.tiny import TINY_ARCHITECTURE_VERSION
from results.model import SCHEMA_VERSION, BootstrapInfo, MethodInfo, Provenance, Results, RunInfo
from results.schema import load, save, validate
from results.stats import bootstrap_ci

from bench.generate.runner import (GENERATION_CODE_VERSION, GenerationSettings, MethodPlan, MetricSetupError, check_resumable,
                                   generate_all, generation_timing, method_fingerprint, require_complete, store_summary)
from bench.generate.store import ClipStore, publish_dir, remove_abandoned_staging, staging_dir
from bench.net.offline import enforce_if_requested, runtime_provenance
from bench.paired.leaderboard import add_paired
from bench.plan import checkpoints
from bench.plan import protocol as protocol_mod
from bench.plan import shard as shard_mod
from bench.plan.config import STAGES, settings_problems
from bench.plan.description import run_description
from bench.plan.metric_settings import enabled_metrics, run_facts
from bench.plan.prompts import CLIP_MAX_TOKENS, load_prompt_set, overlong_captions
from bench.preflight.checklist import check as preflight_check
from bench.run import set_scoring
from bench.run.lock import run_lock, scope_of
from bench.run.provenance import git_state, package_versions
from bench.run.rundir import check_same_experiment, published, save_preflight

log = logging.getLogger("lcmbench")

WEIGHT_LABELS = {
    "tiny": "TINY RANDOM WEIGHTS - exercises the harness; not comparable to paper numbers",
    "random": "RANDOM FULL-SIZE WEIGHTS - for timing only; quality metrics are meaningless",
    "pretrained": "",
}


def _spec_from_cfg(node: DictConfig) -> ModelSpec:
    data = OmegaConf.to_container(node, resolve=True)
    sampler = data.pop("sampler")
    # "+key=value" overrides can slip extra keys past the schema: refuse them here
    for given, schema in ((data, ModelSpec), (sampler, SamplerSpec)):
        known = [f.name for f in fields(schema)]
        for key in given:
            if key not in known:
                raise InputError(f"Unknown {schema.__name__} setting '{key}' for method '{data.get('name')}'."
                                 f"{did_you_mean(key, known)}")
    return resolve_spec(ModelSpec(**data, sampler=SamplerSpec(**sampler)))


def make_plans(cfg: DictConfig, prompt_set, dtype: str = "float32") -> List[MethodPlan]:
    p = cfg.protocol
    if not cfg.methods:
        raise InputError("The experiment lists no methods. Add some, e.g. "
                         "'+model@methods.animatelcm=animatelcm'.")
    # the resolved dtype changes pixels too: a resume in another dtype must not mix clips
    geometry = {"weights": cfg.weights, "seed": cfg.seed, "num_frames": p.num_frames, "height": p.height,
                "width": p.width, "dtype": str(dtype)}
    # so do the fast path's kernel choices (within tolerance, not bit for bit); the plain
    # path and pixel-neutral settings add nothing, which keeps older fingerprints valid
    fast = pixel_settings(OmegaConf.to_container(cfg.runner.fast, resolve=True))
    if fast:
        geometry["fast"] = fast
    if cfg.weights == "tiny":   # the tiny components' version: pretrained and random fingerprints keep theirs
        geometry["tiny"] = TINY_ARCHITECTURE_VERSION
    specs = protocol_mod.expand(list(cfg.methods), p.nfe, prompt_set, p.videos_per_prompt, p.seed,
                                cfg.runner.samples_per_cell, cfg.runner.save_frames,
                                videos_by_dimension=p.videos_per_prompt_by_dimension)
    # set metrics read videos: keep the frames of the clips they will score
    scored_nfes = set(frames_nfes(cfg).values())
    specs = [replace(s, keep_frames=True) if s.nfe in scored_nfes else s for s in specs]
    plans = []
    for name, node in cfg.methods.items():
        spec = _spec_from_cfg(node)
        clips = [s for s in specs if s.method == name]
        plans.append(MethodPlan(name, spec, clips, method_fingerprint(spec, geometry)))
    return plans


def metric_options(cfg: DictConfig, name: str) -> Dict[str, Any]:
    """The build options of metric ``name`` as this run gives them (also bench.fvd_reference's)."""
    options = OmegaConf.to_container(cfg.metrics[name].options, resolve=True)
    return metric_registry.plugin(name).resolve_options(options, run_facts(cfg))


def metric_settings_problems(cfg: DictConfig) -> List[str]:
    """Every enabled metric's settings that cannot give a meaningful number with this run."""
    run = run_facts(cfg)
    return [problem for name, options in enabled_metrics(cfg).items()
            for problem in metric_registry.plugin(name).settings_problems(options, run)]


def frames_nfes(cfg: DictConfig) -> Dict[str, int]:
    """{set metric: the step count whose clips keep their frames for it}."""
    run, nfes = run_facts(cfg), [int(n) for n in cfg.protocol.nfe]
    out = {}
    for name, options in enabled_metrics(cfg).items():
        plugin = metric_registry.plugin(name)
        nfe = plugin.frames_nfe(options, run) if plugin.kind == "set" else None
        if nfe is None:
            continue
        if nfe not in nfes:
            raise InputError(f"metrics.{name} scores the clips of {nfe} steps, which is not one of protocol.nfe="
                             f"{nfes}: set its options to one of them, or leave its step count unset (the largest).")
        out[name] = int(nfe)
    return out


def build_metrics(cfg: DictConfig, device: str) -> List[Any]:
    """The enabled metrics of the clip kind, built (their features are made with each clip)."""
    return [metric_registry.build(name, device=device, **metric_options(cfg, name))
            for name in enabled_metrics(cfg) if metric_registry.plugin(name).kind == "clip"]


def build_set_metrics(cfg: DictConfig, device: str) -> List[Tuple[Any, Any, int]]:
    """(plug-in, built metric, step count scored) of every enabled set metric with clips to score."""
    return [(metric_registry.plugin(name), metric_registry.build(name, device=device, **metric_options(cfg, name)),
             nfe) for name, nfe in frames_nfes(cfg).items()]


class Run:
    """One run of an experiment in one run directory (resumable)."""

    def __init__(self, cfg: DictConfig, run_dir: Path, shard: Optional[shard_mod.Shard] = None):
        self.cfg = cfg
        self.shard = shard or shard_mod.Shard()
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.store = ClipStore(self.run_dir / "store")
        self.started = time.time()
        self.metrics: List[Any] = []
        self.set_metrics: List[Tuple[Any, Any, int]] = []   # (plug-in, built metric, step count scored)
        self.plans: List[MethodPlan] = []
        self.prompt_set = None
        self.device, self.dtype = "cpu", "float32"
        self.summary = None
        self.timing_rows: List[Dict[str, Any]] = []
        self.share_token: Optional[str] = None   # names this attempt's shares of split set metrics

    # -------------------------------------------------------------- stages
    def preflight(self) -> None:
        cfg = self.cfg
        bad = [s for s in cfg.stages if s not in STAGES]
        if bad:
            raise InputError(f"Unknown stage(s) {bad}: stages are {', '.join(STAGES)}.")
        if cfg.weights not in models.WEIGHT_MODES:
            raise InputError(f"weights={cfg.weights} is not a weight mode: use {', '.join(models.WEIGHT_MODES)}.")

        self.device, self.dtype = resolve_device_dtype(cfg.runner.device, cfg.runner.dtype)
        self.device = shard_mod.rank_device(self.device, self.shard)
        p = cfg.protocol
        problems = metric_settings_problems(cfg)
        if problems:
            raise InputError(" ".join(problems))
        # VBench's standard prompt set holds the prompts of the dimensions the metrics score
        dimensions = [d for options in enabled_metrics(cfg).values() for d in options.get("dimensions") or []]
        self.prompt_set = load_prompt_set(p.prompt_set, p.prompt_file, cfg.cache_dir,
                                          vbench_dimensions=dimensions or None).subset(
            list(p.classes) if p.classes else None, p.num_classes)
        long = overlong_captions(self.prompt_set, cfg.cache_dir)
        if long:
            worst = max(long, key=lambda t: t[1])
            log.warning("%d of %d captions are longer than CLIP's %d tokens and are cut to their first %d "
                        "(longest: %s, %d tokens)", len(long), len(self.prompt_set.classes), CLIP_MAX_TOKENS,
                        CLIP_MAX_TOKENS, worst[0], worst[1])
        self.plans = make_plans(cfg, self.prompt_set, self.dtype)
        self.metrics = build_metrics(cfg, self.device)
        self.set_metrics = build_set_metrics(cfg, self.device)
        for metric in self.metrics:
            try:
                metric.prepare(cfg.cache_dir)
            except RuntimeError as err:   # reference data it cannot use, e.g. no readable video
                raise MetricSetupError(f"metric '{metric.name}' could not be prepared: {err}") from err
        n = sum(len(pl.clips) for pl in self.plans)
        pooled = protocol_mod.pooled_classes(self.prompt_set, p.videos_per_prompt, p.videos_per_prompt_by_dimension)
        log.info("Plan: %d methods x NFE %s x %d prompts x %d videos%s = %d clips (%dx%dx%d), weights=%s, "
                 "device=%s %s", len(self.plans), list(p.nfe), len(self.prompt_set.classes), p.videos_per_prompt,
                 f" (more for the pool of {len(pooled)} prompts)" if pooled else "", n, p.num_frames, p.height,
                 p.width, cfg.weights, self.device, self.dtype)

    def timing(self) -> None:
        """The timing protocol (bench/timing/denoising.py): warm-up, repeats, CUDA events on a GPU."""
        from bench.timing.denoising import run_timing  # heavy: diffusers and transformers, only when the timing stage runs

        self.timing_rows = run_timing(self.cfg, device=self.device, dtype=self.dtype, progress=log.info)

    def generate(self) -> None:
        cfg, p, r = self.cfg, self.cfg.protocol, self.cfg.runner
        # the background writer is part of the fast path: the plain path stays strictly sequential
        writer_threads = int(r.fast.writer_threads) if r.fast.enabled else 0
        settings = GenerationSettings(p.num_frames, p.height, p.width, r.batch_size, r.decode_chunk_size,
                                      r.save_frames, r.save_videos, r.progress,
                                      writer_threads=writer_threads, max_pending=int(r.fast.max_pending))

        def build(plan: MethodPlan, nfe: Optional[int] = None):
            log.info("Building %s (%s weights%s)", plan.name, cfg.weights, f", {nfe} steps" if nfe else "")
            overrides = {k: v for k, v in asdict(plan.spec).items() if k != "name"}
            overrides["sampler"] = plan.spec.sampler
            return models.build(plan.spec.name, weights=cfg.weights, device=self.device, dtype=self.dtype,
                                cache_dir=cfg.cache_dir, seed=cfg.seed,
                                allow_unsafe_pickle=r.allow_unsafe_pickle, nfe=nfe,
                                fast=OmegaConf.to_container(r.fast, resolve=True), **overrides)

        self.summary = generate_all(self.plans, self.store, self.metrics, settings, build,
                                    self.run_dir / "videos", shard=self.shard)
        log.info("Generated %d clips, %d already in the store, %d non-finite, in %.1f s (%s)",
                 self.summary.made, self.summary.skipped, len(self.summary.nonfinite), self.summary.seconds,
                 self.shard.label())

    def score(self) -> Dict[str, Any]:
        rep = self.cfg.report
        # a timing-only run (stages without generate, store empty) scores just its timing rows
        timing_only = bool(self.timing_rows) and "generate" not in self.cfg.stages and not self.store.keys()
        if not timing_only:
            require_complete(self.plans, self.store, [m.feature_key for m in self.metrics])
        rows, timing = [], []
        for plan in ([] if timing_only else self.plans):
            for nfe in sorted({c.nfe for c in plan.clips}):
                # rows in sample-key order, as paired differences order them: the cell's bootstrap
                # resamples are then the ones its paired differences need, computed once
                clips = sorted((c for c in plan.clips if c.nfe == nfe), key=lambda c: c.sample_key)
                records = self.store.read_many([c.key for c in clips])
                missing = len(clips) - len(records)
                good = [records[c.key] for c in clips if c.key in records and records[c.key].meta.get("finite", True)]
                excluded = len(records) - len(good)
                if missing:
                    log.warning("%s NFE %d: %d of %d clips missing from the store; scored without them",
                                plan.name, nfe, missing, len(clips))
                for metric in self.metrics:
                    feats = np.stack([r.features[metric.feature_key] for r in good]) if good else None
                    if feats is None:
                        continue
                    prompts = [r.meta["prompt"] for r in good]
                    result = metric.score(feats, prompts)
                    if "skip" in result:   # the metric cannot score this cell (e.g. FVD-inf below min_n): no row
                        log.warning("%s NFE %d: %s not scored: %s", plan.name, nfe, metric.name, result["skip"])
                        continue
                    row = {"method": plan.name, "nfe": nfe, "metric": metric.name, "value": float(result["value"]),
                           "n": int(result.get("n", len(good))), "protocol": metric.feature_key,
                           "ci_low": None, "ci_high": None,
                           "extra": {k: v for k, v in result.items() if k not in ("value", "n", "per_clip")}}
                    row["extra"].update({"missing": missing, "excluded_nonfinite": excluded})
                    if rep.bootstrap > 0 and len(good) > 1 and metric.bootstraps:
                        def stat(f, p=prompts, m=metric):
                            with warnings.catch_warnings():   # the point estimate already reported them
                                warnings.simplefilter("ignore")
                                return float(m.score(f, p)["value"])
                        per_clip = metric.per_clip(feats)
                        if per_clip is not None:
                            _, lo, hi = bootstrap_ci(np.asarray(per_clip), lambda v: float(np.mean(v)),
                                                     rep.bootstrap, rep.bootstrap_seed, rep.alpha)
                        else:
                            # set-level statistic (FVD): resampled clips are duplicated, which
                            # inflates FVD, so the interval is bias-corrected around the value
                            fast = getattr(metric, "bootstrap_statistic", lambda: None)()
                            _, lo, hi = bootstrap_ci(feats, fast or stat, rep.bootstrap, rep.bootstrap_seed,
                                                     rep.alpha, interval="bias_corrected")
                        row["ci_low"], row["ci_high"] = float(lo), float(hi)
                    if metric.per_clip(feats) is not None:
                        row["extra"]["per_clip"] = {r.meta["key"]: float(v)
                                                    for r, v in zip(good, metric.per_clip(feats))}
                    rows.append(row)
                if records:
                    timing.append(generation_timing(plan, nfe, list(records.values()), self.device, self.dtype))
        if self.timing_rows:   # measured by the timing stage: they replace the store-derived times
            measured = {(t["method"], t["nfe"]) for t in self.timing_rows}
            timing = [t for t in timing if (t["method"], t["nfe"]) not in measured] + self.timing_rows
        if rep.leaderboard_reference and not timing_only:
            add_paired(rows, self.plans, self.store, self.metrics, rep.leaderboard_reference,
                       max(rep.bootstrap, 0), rep.bootstrap_seed, rep.alpha)
        pairs = checkpoints.equal_step_pairs(self.cfg.ablation.variants)
        if pairs and not timing_only:   # joint - decoupled at each training step, on the same clips
            add_paired(rows, self.plans, self.store, self.metrics, pairs, max(rep.bootstrap, 0),
                       rep.bootstrap_seed, rep.alpha)
        scored: Dict[str, Any] = {"rows": rows, "timing": timing}
        if self.cfg.ablation.variants:
            scored["ablation"] = checkpoints.ablation_section(self.cfg.ablation.variants, self.cfg.methods, rows)
        if not timing_only:
            for plugin, metric, nfe in self.set_metrics:
                scored[plugin.section] = self.score_set(metric, nfe, self.run_dir / plugin.section)
        return scored

    def score_set(self, metric: Any, nfe: int, work_dir: Path) -> Dict[str, Any]:
        """A set metric on the stored frames at step count ``nfe`` (bench/run/set_scoring.py)."""
        return set_scoring.score_set(self, metric, nfe, work_dir)

    def samples(self) -> Dict[tuple, np.ndarray]:
        out = {}
        for plan in self.plans:
            for clip in plan.clips:
                if clip.keep_frames and (plan.name, clip.nfe) not in out:
                    record = self.store.read(clip.key, with_frames=True)
                    if record is not None and record.frames is not None:
                        out[(plan.name, clip.nfe)] = record.frames
        return out

    def protocols(self) -> Dict[str, Any]:
        out = {}
        for m in self.metrics:
            desc = dict(m.describe())
            proto = desc.get("protocol_spec") or desc.get("protocol")   # FVD describes its protocol in full
            out[m.name] = {**desc, "name": proto.get("name", m.name) if isinstance(proto, dict) else (proto or m.name),
                           "version": str(proto.get("version", "1")) if isinstance(proto, dict)
                           else str(desc.get("version", "1")),
                           "id": m.feature_key}
        for _, metric, _ in self.set_metrics:
            out[metric.name] = dict(metric.describe())
        return out

    def parity(self) -> Dict[str, Any]:
        """Which of the authors' pipeline choices made these clips and numbers (docs/parity.md)."""
        choices = {}
        for plan in self.plans:
            sp = plan.spec
            choices[plan.name] = {"motion_norm": sp.motion_norm, "quantize": sp.quantize}
            if sp.lora not in (None, "none") and sp.lora_scale:
                choices[plan.name].update(lora_convention=sp.lora_convention, lora_scale=sp.lora_scale)
            if sp.personalized:
                choices[plan.name]["personalized_vae"] = sp.personalized_vae
            if sp.sampler.kind == "dpmpp":
                choices[plan.name]["final_sigmas_type"] = resolve_sampler(sp.sampler)["final_sigmas_type"]
        out: Dict[str, Any] = {"version": GENERATION_CODE_VERSION, "reference": "G-U-N/AnimateLCM",
                               "methods": choices}
        for metric in [*self.metrics, *(m for _, m, _ in self.set_metrics)]:
            out.update(metric.parity())   # the metrics' own parity choices, e.g. FVD's BatchNorm epsilon
        return out

    def results(self, scored: Dict[str, Any]) -> Results:
        """The run's typed results: this run's provenance and methods around the scored sections."""
        cfg = self.cfg
        finished = time.time()
        methods = {}
        for plan in self.plans:
            spec = asdict(plan.spec)
            spec["sampler"] = resolve_sampler(plan.spec.sampler)
            extra = {}
            if step_specific(plan.spec):   # which file made each step count's cells
                extra = {"motion_files": {str(k): plan.spec.motion_adapter_file.format(nfe=k)
                                          for k in sorted({c.nfe for c in plan.clips})}}
            methods[plan.name] = MethodInfo(display_name=plan.spec.display_name or plan.name, spec=spec,
                                            weights={"mode": cfg.weights, "seed": cfg.seed},
                                            scheduler=spec["sampler"], guidance_scale=float(plan.spec.guidance_scale),
                                            fingerprint=plan.fingerprint, extra=extra)
        stamp = "%Y-%m-%dT%H:%M:%S"
        return validate({
            "schema_version": SCHEMA_VERSION,
            "run": RunInfo(experiment=cfg.experiment, run_dir=str(self.run_dir),
                           description=run_description(cfg, prompts=self.prompt_set),
                           started_at=time.strftime(stamp, time.localtime(self.started)),
                           finished_at=time.strftime(stamp, time.localtime(finished)),
                           wall_time_s=finished - self.started, weights_mode=cfg.weights,
                           label=WEIGHT_LABELS[cfg.weights]),
            "provenance": Provenance(
                **git_state(), config=OmegaConf.to_container(cfg, resolve=True),
                seeds={"base_seed": cfg.protocol.seed, "init_seed": cfg.seed,
                       "bootstrap_seed": cfg.report.bootstrap_seed},
                packages=package_versions(), device=device_info(self.device, self.dtype),
                protocols=self.protocols(),
                prompt_set={"name": self.prompt_set.name, "sha256": self.prompt_set.sha256,
                            "classes": list(self.prompt_set.classes)},
                generation={**(asdict(self.summary) if self.summary else {}),
                            "store": store_summary(self.plans, self.store)},
                parity=self.parity(), extra={"runtime": runtime_provenance(self.device)}),
            "methods": methods,
            "bootstrap": BootstrapInfo(n_boot=cfg.report.bootstrap, seed=cfg.report.bootstrap_seed,
                                       alpha=cfg.report.alpha,
                                       method="clip resampling; percentile interval for means (CLIPSIM), "
                                              "bias-corrected percentile for set statistics (FVD)"),
            **scored,
        })

    def report(self, results: Results) -> List[Path]:
        from results.report import write_all  # heavy: matplotlib, only when the report stage runs

        # written aside and moved in file by file, results.json last: a kill never
        # leaves a results.json beside half-written tables or plots
        staging = staging_dir(self.run_dir)
        write_all(results, staging, samples=self.samples(), with_paper=self.cfg.report.with_paper)
        return publish_dir(staging, self.run_dir)


def run(cfg: DictConfig, run_dir: Path) -> Optional[Dict[str, Any]]:
    """Run the configured stages; returns the typed results when scoring ran."""
    enforce_if_requested(cfg)   # strict offline mode before any library can reach the network
    checkpoints.expand(cfg)     # your checkpoints (ablation.dir / ablation.runs) as methods; preflight names gaps
    problems = settings_problems(cfg)
    if problems:
        raise InputError(" ".join(problems))
    if cfg.runner.get("threads"):   # pinned before any model is built
        torch.set_num_threads(int(cfg.runner.threads))
    shard = shard_mod.detect(cfg.shard.index, cfg.shard.count, cfg.shard.use_env)
    if shard.config_count > 1 and not cfg.run_dir:
        raise InputError(f"shard.count={shard.config_count} needs run_dir=PATH, the same for every shard job and "
                         f"the score job: each job of a sweep otherwise writes its own store.")
    group = shard_mod.open_group(shard, cfg.runner.device, cfg.runner.dtype, cfg.shard.timeout_min)
    try:
        return _run_stages(cfg, shard_mod.shared_run_dir(group, Path(cfg.run_dir or run_dir)), shard, group)
    finally:
        group.close()


def _run_stages(cfg: DictConfig, run_dir: Path, shard: shard_mod.Shard, group: shard_mod.Group):
    # every problem of the whole run, found before any model is built; every rank checks
    # its own machine (caches differ between nodes), rank 0 prints the plan. Nothing is
    # written into the run directory until the run has passed every check.
    report = preflight_check(cfg, run_dir if shard.is_main else None, echo=shard.is_main, save=False)
    if set(cfg.stages) <= {"preflight"}:
        if shard.is_main:
            check_same_experiment(cfg, run_dir)
            save_preflight(report, run_dir)
        return None
    render_only = "report" in cfg.stages and "score" not in cfg.stages
    if render_only and not (run_dir / "results.json").is_file():
        raise InputError(f"stages={list(cfg.stages)} renders the tables of a scored run, but {run_dir} has no "
                         f"results.json. Run the score stage first (stages=[score,report]), or the whole run "
                         f"(no stages=), in that run directory.")
    run = Run(cfg, run_dir, shard)
    run.preflight()
    check_resumable(run.plans, run.store)   # a store made with other settings is refused untouched
    check_same_experiment(cfg, run.run_dir)   # so is a folder of another experiment configuration
    with run_lock(run.run_dir, scope_of(shard.index, shard.count)):
        if not shard.is_main:
            return _work(cfg, run, shard, group, render_only)
        with published(cfg, run.run_dir, report):
            remove_abandoned_staging(run.run_dir)
            return _work(cfg, run, shard, group, render_only)


def _work(cfg: DictConfig, run: "Run", shard: shard_mod.Shard, group: shard_mod.Group, render_only: bool):
    if render_only:
        paths = run.report(load(run.run_dir / "results.json"))
        log.info("Rendered %d files from %s", len(paths), run.run_dir / "results.json")
        print(f"lcmbench: re-rendered the tables and report of {run.run_dir}")
        return None
    if "timing" in cfg.stages:
        run.timing()
    if "generate" in cfg.stages:
        run.generate()
    group.barrier()   # every rank's clips are in the store before rank 0 scores
    run.share_token = group.broadcast(uuid.uuid4().hex)   # rank 0 waits for shares of this attempt
    # the group's work is done: rank 0 scores as a single process, so libraries that look
    # for torch.distributed (VBench gathers across ranks) do not wait for ranks that left
    group.close()
    results = None
    if "score" in cfg.stages:   # every worker scores its share of the set metrics that split
        set_scoring.write_shares(run, run.share_token)
    if "score" in cfg.stages and not shard.scores:
        then = ("rank 0 scores them" if shard.group else
                f"score with: python run_bench.py run_dir={run.run_dir} 'stages=[score,report]' "
                f"(same experiment and overrides, no shard.*) once every shard is done")
        print(f"lcmbench: {shard.label()}: its clips are in {run.run_dir / 'store'}; {then}.")
        return None
    if "score" in cfg.stages:
        results = run.results(run.score())
        if "report" in cfg.stages:
            paths = run.report(results)
            log.info("Wrote %d files", len(paths))
        else:
            save(run.run_dir / "results.json", results)
    wall = time.time() - run.started
    print(f"lcmbench: {cfg.experiment} finished in {wall:.1f} s (wall). Results in {run.run_dir}")
    if cfg.weights != "pretrained":
        print(f"lcmbench: {WEIGHT_LABELS[cfg.weights]}")
    return results
