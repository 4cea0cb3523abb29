"""The generation runner: make every missing clip, compute its metric features as it
is made, and store both atomically. Rerunning skips what is already in the store."""
from __future__ import annotations

import gc
import hashlib
import json
import logging
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence

import numpy as np
from tqdm import tqdm

from common.errors import InputError, LcmbenchError
from metrics.video_io import write_mp4
from models.schedulers import resolve_sampler
from models.specs import ModelSpec, step_specific

from bench.generate.store import ClipStore
from bench.plan.protocol import ClipSpec
from bench.plan.shard import Shard

log = logging.getLogger("lcmbench")


class StoreMismatch(LcmbenchError, RuntimeError):
    """The store holds clips made with other settings than the current run's."""


class StoreIncomplete(LcmbenchError, RuntimeError):
    """Scoring was asked for while clips are still missing from the store."""


class GenerationOutOfMemory(LcmbenchError, RuntimeError):
    """A batch of one clip does not fit in GPU memory."""


class MetricSetupError(LcmbenchError, ValueError):
    """A metric could not load or compute its reference data (a data problem the user fixes)."""


@dataclass
class MethodPlan:
    name: str
    spec: ModelSpec                      # resolved: no None left
    clips: List[ClipSpec]
    fingerprint: str = ""

    def __post_init__(self):
        if not self.fingerprint:
            self.fingerprint = method_fingerprint(self.spec, {})


# Raise when a code change alters the pixels made for the same settings and seed, so
# that a store made by older code is refused instead of silently mixed with new clips.
GENERATION_CODE_VERSION = 2   # 2: the parity defaults (motion norm, LoRA fusion, personalized VAE, truncation)


def method_fingerprint(spec: ModelSpec, generation: Dict[str, Any]) -> str:
    """Everything that changes a clip's pixels for a given seed: the resolved model and
    sampler settings, the weight mode, dtype and frame geometry, and the generation code's version."""
    # how a method is shown (name, colour) does not shape its pixels
    shown = ("display_name", "color")
    payload = {"spec": {k: v for k, v in asdict(spec).items() if k not in shown},
               "sampler": resolve_sampler(spec.sampler), "code": GENERATION_CODE_VERSION, **generation}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class GenerationSettings:
    num_frames: int
    height: int
    width: int
    batch_size: int = 1
    decode_chunk_size: int = 16
    save_frames: bool = False
    save_videos: bool = False
    progress: bool = True
    writer_threads: int = 0     # >0: features and store writes of batch k run while batch k+1 generates
    max_pending: int = 2        # finished batches that may wait for the writer before generation blocks


@dataclass
class GenerationSummary:
    made: int = 0
    skipped: int = 0
    features_added: int = 0
    corrupt_regenerated: int = 0
    nonfinite: List[str] = field(default_factory=list)
    seconds: float = 0.0
    batch_sizes: Dict[str, int] = field(default_factory=dict)   # per method: the batch size that worked
    oom_retries: int = 0                                        # batches retried smaller after running out of memory
    temporaries_removed: int = 0                                # leftovers of killed writers
    shard: Dict[str, Any] = field(default_factory=dict)         # which share of the clips this process made
    not_owned: int = 0                                          # clips left to other shards
    writer_threads: int = 0                                     # 0: features and writes inline
    writer_wait_s: float = 0.0                                  # time generation waited for the writer


def clip_inputs(plan: MethodPlan, spec: ClipSpec) -> Dict[str, Any]:
    """Every per-clip input that shapes the clip's pixels, besides the method fingerprint:
    stored with each clip and checked on every resume, so a resume with another seed,
    caption or negative prompt never reuses clips made from other inputs."""
    negative = plan.spec.negative_prompt if float(plan.spec.guidance_scale or 1.0) > 1.0 else None
    return {"seed": spec.seed, "prompt": spec.prompt, "negative_prompt": negative, "nfe": spec.nfe}


def _needs(record, plan: MethodPlan, spec: ClipSpec, feature_keys: Sequence[str]) -> str:
    """'' when the stored clip is complete, else what is missing."""
    if record is None:
        return "clip"
    differs = [f"{name} {have!r}, this run {want!r}" for name, have, want in
               (("fingerprint", record.meta.get("fingerprint"), plan.fingerprint),
                *((k, record.meta.get(k), v) for k, v in clip_inputs(plan, spec).items()))
               if have != want]
    if differs:
        raise StoreMismatch(
            f"The store already holds clip '{spec.key}' made with other settings for method '{plan.name}' "
            f"({'; '.join(differs)}). Use a new run directory (hydra.run.dir=...) or remove the old store "
            f"to regenerate.")
    if spec.keep_frames and not record.has_frames:
        return "clip"
    if any(k not in record.features for k in feature_keys):
        return "features" if record.has_frames else "clip"
    return ""


def _out_of_memory_errors() -> tuple:
    import torch  # heavy: torch: the command line imports this module for its error types, before any model exists

    return (torch.cuda.OutOfMemoryError,)


def _current_cuda_device() -> Optional[int]:
    """The calling thread's CUDA device index, or None when CUDA is not in use."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch.cuda.current_device()


def _release_gpu_memory() -> None:
    import torch  # heavy: as above

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def check_resumable(plans: Sequence[MethodPlan], store: ClipStore) -> None:
    """Raise StoreMismatch when the store holds any planned clip made from other inputs
    or settings, before anything is built or written."""
    for plan in plans:
        by_key = {c.key: c for c in plan.clips}
        for key, record in store.read_many(list(by_key)).items():
            _needs(record, plan, by_key[key], ())


def missing_clips(plans: Sequence[MethodPlan], store: ClipStore, feature_keys: Sequence[str]) -> List[str]:
    """Keys of planned clips that the store lacks, or holds without every metric's features."""
    missing = []
    for plan in plans:
        for spec in plan.clips:
            record = store.read(spec.key, with_frames=False)
            if record is None or any(k not in record.features for k in feature_keys):
                missing.append(spec.key)
    return missing


def require_complete(plans: Sequence[MethodPlan], store: ClipStore, feature_keys: Sequence[str]) -> None:
    """Scoring a partial store would publish numbers over fewer clips than the protocol
    asks for: refuse, naming what is missing."""
    missing = missing_clips(plans, store, feature_keys)
    if missing:
        total = sum(len(p.clips) for p in plans)
        made = [k for k in missing if store.path(k).is_file()]
        if made:
            raise StoreIncomplete(features_missing(store, missing, made, total, feature_keys))
        raise StoreIncomplete(
            f"the store {store.root} lacks {len(missing)} of {total} clips (e.g. {missing[0]}), so nothing was "
            f"scored. Run the generate stage for every shard first (or run without 'stages=' here to make them).")


def features_missing(store: ClipStore, missing: Sequence[str], made: Sequence[str], total: int,
                     feature_keys: Sequence[str]) -> str:
    """The message when stored clips lack this run's metric features (another detector
    or protocol than the one that made them): what is missing and how to add it."""
    record = store.read(made[0], with_frames=False)
    lacking = [k for k in feature_keys if record is None or k not in record.features]
    framed = sum(store.has_frames(k) for k in made)
    how = ("the generate stage extracts them from the stored frames; no clip is made again"
           if framed == len(made) else
           "the generate stage makes those clips again from their stored seeds (their frames were not kept; "
           "runner.save_frames=true keeps them) and extracts them" if framed == 0 else
           f"the generate stage extracts them from the stored frames of {framed} and makes the other "
           f"{len(made) - framed} again from their stored seeds (their frames were not kept)")
    absent = len(missing) - len(made)
    also = f"; {absent} more clips are not in the store at all" if absent else ""
    return (f"the store {store.root} holds {len(made)} of the {total} clips without this run's features "
            f"{', '.join(lacking)} (e.g. {made[0]}){also}, so nothing was scored: the clips were scored with "
            f"another metric setup (another detector or protocol). Extract the features with "
            f"stages=[generate,score,report] in this run directory: {how}.")


def store_summary(plans: Sequence[MethodPlan], store: ClipStore) -> Dict[str, Any]:
    """What the store says about how its clips were made, whichever processes made
    them: batch sizes used per method and clips flagged non-finite."""
    sizes: Dict[str, set] = {}
    nonfinite: List[str] = []
    for plan in plans:
        for key, record in store.read_many([c.key for c in plan.clips]).items():
            sizes.setdefault(plan.name, set()).add(int(record.meta.get("batch_size", 0)))
            if not record.meta.get("finite", True):
                nonfinite.append(key)
    return {"batch_sizes_used": {m: sorted(v) for m, v in sizes.items()}, "nonfinite": nonfinite,
            "nonfinite_count": len(nonfinite)}


def generate_all(plans: Sequence[MethodPlan], store: ClipStore, metrics: Sequence[Any],
                 settings: GenerationSettings, build_model: Callable[[MethodPlan], Any],
                 video_dir: Optional[Path] = None, shard: Optional[Shard] = None) -> GenerationSummary:
    """Make every clip of every plan that the store lacks. ``build_model(plan)`` is only
    called for methods with work left (``build_model(plan, nfe)`` for models whose
    weights depend on the step count). ``metrics`` are ClipMetric objects. With a
    ``shard``, only the clips it owns are looked at and made."""
    shard = shard or Shard()
    summary = GenerationSummary(shard=shard.describe())
    start = time.perf_counter()
    summary.temporaries_removed = store.remove_temporaries()
    metrics = list({m.feature_key: m for m in metrics}.values())   # metrics sharing a feature key extract once
    feature_keys = [m.feature_key for m in metrics]
    work: Dict[str, List[ClipSpec]] = {}
    refeature: Dict[str, List[tuple]] = {}
    corrupt_before = len(store.corrupt)
    for plan in plans:
        for spec in plan.clips:
            if not shard.owns(spec.key):
                summary.not_owned += 1
                continue
            record = store.read(spec.key, with_frames=False)   # frames only where features are missing
            need = _needs(record, plan, spec, feature_keys)
            if need == "clip":
                work.setdefault(plan.name, []).append(spec)
            elif need == "features":
                refeature.setdefault(plan.name, []).append((spec, record))
            else:
                summary.skipped += 1
    summary.corrupt_regenerated = len(store.corrupt) - corrupt_before
    if summary.corrupt_regenerated:
        log.warning("%d clip file(s) failed their integrity check and will be regenerated: %s",
                    summary.corrupt_regenerated, store.corrupt[corrupt_before:][:5])

    # clips whose frames are stored but that lack a metric's features: no regeneration needed
    for name, items in refeature.items():
        for spec, record in items:
            record = store.read(spec.key, with_frames=True)
            if record is None or record.frames is None:   # replaced or damaged since the scan: make it again
                work.setdefault(name, []).append(spec)
                continue
            feats = {m.feature_key: np.asarray(m.extract(record.frames[None], [spec.prompt]))[0]
                     for m in metrics if m.feature_key not in record.features}
            store.write(spec.key, record.meta, {**record.features, **feats}, record.frames)
            summary.features_added += 1

    total = sum(len(v) for v in work.values())
    desc = "generate" if not shard.sharded else f"generate [{shard.index}/{shard.count}]"
    bar = tqdm(total=total, desc=desc, unit="clip", disable=not settings.progress or total == 0)
    oom = _out_of_memory_errors()
    summary.writer_threads = max(0, int(settings.writer_threads))
    worker = BackgroundWorker(summary.writer_threads, max(1, int(settings.max_pending)))

    def features_of(frames, batch) -> Dict[str, np.ndarray]:
        return {m.feature_key: np.asarray(m.extract(frames, [s.prompt for s in batch])) for m in metrics}

    def store_batch(plan: MethodPlan, batch: List[ClipSpec], frames, timing, features) -> None:
        items = []
        for i, spec in enumerate(batch):
            clip_feats = {k: v[i] for k, v in features.items()}
            finite = bool(timing.get("finite", [True] * len(batch))[i]) and \
                all(np.isfinite(v).all() for v in clip_feats.values())
            meta = {"key": spec.key, "method": spec.method, "class_name": spec.class_name,
                    "video_index": spec.video_index, **clip_inputs(plan, spec),
                    "fingerprint": plan.fingerprint, "finite": finite,
                    "batch_size": len(batch),
                    "denoise_ms": 1000.0 * timing["denoise_s"] / len(batch),
                    "text_encode_ms": 1000.0 * timing["text_encode_s"] / len(batch),
                    "decode_ms": 1000.0 * timing["decode_s"] / len(batch), "clock": timing.get("clock"),
                    "warmup_call": bool(timing.get("warmup", False)), "generation_call": timing.get("call"),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
            keep = frames[i] if (settings.save_frames or spec.keep_frames) else None
            items.append((spec.key, meta, clip_feats, keep))
        store.write_many(items)   # one filesystem flush per batch, not one per clip
        for i, (spec, (_, meta, _, _)) in enumerate(zip(batch, items)):
            if settings.save_videos and video_dir is not None:
                write_mp4(video_dir / spec.method / f"nfe{spec.nfe}" / f"{spec.class_name}-{spec.video_index}.mp4",
                          frames[i])
            with worker.lock:
                if not meta["finite"]:
                    summary.nonfinite.append(spec.key)
                summary.made += 1
        with worker.lock:
            bar.update(len(batch))

    def finish(plan, batch, frames, timing, cuda_device) -> None:
        # on the writer thread: the GPU is already busy with the next batch. A new
        # thread starts on cuda:0; follow the generating thread's GPU (torchrun ranks)
        if cuda_device is not None:
            # heavy: as above
            import torch

            torch.cuda.set_device(cuda_device)
        store_batch(plan, batch, frames, timing, features_of(frames, batch))

    # one model per method; per (method, NFE) where the weights depend on the step count
    jobs = []
    for plan in plans:
        todo = work.get(plan.name)
        if not todo:
            continue
        if step_specific(plan.spec):
            for nfe in sorted({s.nfe for s in todo}):
                jobs.append((plan, [s for s in todo if s.nfe == nfe], lambda p=plan, k=nfe: build_model(p, k)))
        else:
            jobs.append((plan, todo, lambda p=plan: build_model(p)))
    # leaving the block (normally or by an error) first finishes every batch already generated
    with worker:
        for plan, todo, build in jobs:
            model = build()
            size = max(1, int(settings.batch_size))
            pos = 0
            calls = 0   # the first call of a fresh model is a warm-up (allocation, lazy init): timed, flagged
            while pos < len(todo):
                # the next batch: up to `size` clips of one NFE (a forward runs one step count)
                batch = [todo[pos]]
                while len(batch) < size and pos + len(batch) < len(todo) and todo[pos + len(batch)].nfe == batch[0].nfe:
                    batch.append(todo[pos + len(batch)])
                out_of_memory = False
                features = None
                try:
                    frames = model.generate([s.prompt for s in batch], [s.seed for s in batch], batch[0].nfe,
                                            num_frames=settings.num_frames, height=settings.height,
                                            width=settings.width, decode_chunk_size=settings.decode_chunk_size)
                    timing = dict(model.last_timing, call=calls, warmup=calls == 0)
                    calls += 1
                    if not worker.threads:
                        # inline: a feature extractor out of memory also retries a smaller batch
                        features = features_of(frames, batch)
                except oom:
                    out_of_memory = True
                if out_of_memory:
                    # outside the except block: its traceback no longer pins the failed batch's tensors
                    frames = features = None
                    _release_gpu_memory()
                    if len(batch) == 1:
                        raise GenerationOutOfMemory(
                            f"out of GPU memory for method '{plan.name}' even at batch size 1 "
                            f"({settings.num_frames} frames at {settings.height}x{settings.width}, NFE {batch[0].nfe}): "
                            f"use runner.dtype=float16, a smaller runner.decode_chunk_size, or a larger GPU. "
                            f"Clips already made are kept; rerun in the same run_dir to resume.")
                    size = max(1, len(batch) // 2)
                    summary.oom_retries += 1
                    log.warning("%s: out of GPU memory at batch size %d; retrying at %d", plan.name, len(batch), size)
                    continue
                pos += len(batch)
                if features is None:
                    worker.submit(finish, plan, batch, frames, timing, _current_cuda_device())
                else:
                    store_batch(plan, batch, frames, timing, features)
                summary.batch_sizes[plan.name] = size
            del model
    bar.close()
    summary.writer_wait_s = worker.wait_s
    summary.seconds = time.perf_counter() - start
    return summary


def generation_timing(plan: MethodPlan, nfe: int, records: List[Any], device: str, dtype: str) -> Dict[str, Any]:
    """Denoising time per clip as the generate stage saw it, without each model's first
    (warm-up) call. Information only: results.compare gates speed on timing-protocol rows."""
    steady = [r for r in records if not r.meta.get("warmup_call", False)]
    used = steady or records          # a cell made in one call has nothing but its warm-up
    denoise = np.array([r.meta["denoise_ms"] for r in used])
    calls = len({(r.meta.get("generation_call"), r.meta.get("batch_size")) for r in used})
    note = f"generate stage: per clip = batch time / batch size, VAE excluded; {len(used)} clips from {calls} calls"
    if steady:
        note += f"; {len(records) - len(steady)} clips of warm-up calls excluded"
    else:
        note += "; only warm-up calls made this cell, so they are included"
    return {"method": plan.name, "nfe": nfe, "guidance_scale": plan.spec.guidance_scale,
            "denoise_ms_median": float(np.median(denoise)),
            "denoise_ms_iqr": float(np.subtract(*np.percentile(denoise, [75, 25]))),
            "text_encode_ms": float(np.median([r.meta["text_encode_ms"] for r in used])),
            "vae_ms": float(np.median([r.meta["decode_ms"] for r in used])),
            "n": len(used), "device": device, "dtype": dtype,
            "clock": records[0].meta.get("clock") or "wall", "note": note,
            "extra": {"source": "generation", "calls": calls, "warmup_included": not steady,
                      "warmup_clips_excluded": len(records) - len(steady) if steady else 0}}


class BackgroundWorker:
    """Runs jobs (metric features, store writes) on a small thread pool while the
    caller generates the next batch. At most ``max_pending`` jobs wait or run: a
    submit beyond that blocks until the oldest finishes, which bounds the frames held
    in memory. A job's exception is raised in the caller at the next submit() or at
    drain(). ``threads=0`` runs every job inline (no overlap)."""

    def __init__(self, threads: int = 1, max_pending: int = 2):
        if threads < 0 or max_pending < 1:
            raise InputError(f"BackgroundWorker needs threads >= 0 and max_pending >= 1 (got {threads}, {max_pending}).")
        self.threads = threads
        self.max_pending = max_pending
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lcmbench-writer") if threads else None
        self._pending: Deque[Any] = deque()
        self.lock = threading.Lock()   # for jobs that update shared counters
        self.wait_s = 0.0              # time the caller spent blocked on the writer

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if self._pool is None:
            fn(*args, **kwargs)
            return
        while len(self._pending) >= self.max_pending:
            self._wait_oldest()
        self._pending.append(self._pool.submit(fn, *args, **kwargs))
        # surface a failure early instead of after the whole run
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()

    def _wait_oldest(self) -> None:
        start = time.perf_counter()
        future = self._pending.popleft()
        try:
            future.result()
        finally:
            self.wait_s += time.perf_counter() - start

    def drain(self) -> None:
        """Wait for every job; raise the first error."""
        first: Optional[BaseException] = None
        while self._pending:
            try:
                self._wait_oldest()
            except BaseException as exc:  # keep draining so no job is left running
                first = first or exc
        if first is not None:
            raise first

    def close(self) -> None:
        try:
            self.drain()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def __enter__(self) -> "BackgroundWorker":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # the caller already failed: finish the queued jobs, keep its exception
            try:
                self.close()
            except BaseException:
                pass
