"""Set metrics scored by the run: in one process, or split over the run's workers.

A set metric that can split its work (it has ``score_share`` and ``merge_shares``) is
scored by every worker of a multi-process run (torchrun ranks, shard jobs: W =
shard.count workers, worker shard.index) right after generation: each scores its part of
a plan every process computes alike and writes it as a share,
``<run_dir>/<section>/shares/nfe<k>/<worker>.json``. The process that scores (rank 0, the
score job) merges the shares it finds, scoring itself whatever no share covers: a crashed
job costs time, never correctness. No torch.distributed group is open while a metric
runs (VBench gathers across ranks when one is), so rank 0 waits for its job's shares on
the file system. A share whose clips were made with other settings is ignored.

Shard jobs score only their own clips: units are planned by the worker that made each
clip, and a unit whose clips are not all in the store (a prompt's videos made by several
jobs) is left to the score job.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bench.generate.runner import MetricSetupError
from bench.plan import shard as shard_mod
from common.files import write_atomic
from metrics.base import MetricFailed

# ``run`` below is the pipeline's Run (bench/run/pipeline.py), which imports this module:
# named only in words, so the two files import one way
Run = Any

log = logging.getLogger("lcmbench")

POLL_S = 1.0


def splits(metric: Any) -> bool:
    """Whether the set metric can score its work in shares."""
    return callable(getattr(metric, "score_share", None)) and callable(getattr(metric, "merge_shares", None))


def worker_label(shard: shard_mod.Shard) -> str:
    """main (one process), rank<r> (torchrun), shard<i> (shard jobs), shard<i>-rank<r> (both)."""
    if shard.count == 1:
        return "main"
    parts = []
    if shard.config_count > 1:
        parts.append(f"shard{shard.index // shard.world}")
    if shard.world > 1:
        parts.append(f"rank{shard.rank}")
    return "-".join(parts)


def share_dir(work_dir: Path, nfe: int) -> Path:
    return Path(work_dir) / "shares" / f"nfe{nfe}"


def _clips(run: Run, nfe: int) -> Dict[str, List[Any]]:
    return {plan.name: [c for c in plan.clips if c.nfe == nfe] for plan in run.plans}


def refs(run: Run, nfe: int, owners: bool, stored_only: bool) -> Dict[str, List[Tuple[str, str, int, Optional[int]]]]:
    """Each method's clips at ``nfe``: (key, prompt, video index, worker that makes it when
    ``owners``). ``stored_only``: the clips in the store (what the merge must cover)."""
    stored = set(run.store.keys()) if stored_only else None
    count = run.shard.count
    return {m: [(c.key, c.prompt, c.video_index, shard_mod.shard_of(c.key, count) if owners else None)
                for c in clips if stored is None or c.key in stored]
            for m, clips in _clips(run, nfe).items()}


def items_reader(run: Run, nfe: int) -> Callable[[str, Sequence[str]], Dict[str, Tuple[str, int, np.ndarray]]]:
    """Reads the stored frames of some clips of a method: {key: (prompt, video index, frames)}."""
    by_key = {c.key: c for clips in _clips(run, nfe).values() for c in clips}

    def items_of(method: str, keys: Sequence[str]) -> Dict[str, Tuple[str, int, np.ndarray]]:
        records = run.store.read_many(list(keys), with_frames=True)
        return {k: (by_key[k].prompt, by_key[k].video_index, r.frames) for k, r in records.items()
                if r.frames is not None and k in by_key}
    return items_of


def settings(run: Run, metric: Any) -> Dict[str, Any]:
    """What a share must agree on with the merging process to be used."""
    desc = {k: v for k, v in dict(metric.describe()).items() if k != "nfe"}
    return {"fingerprints": {plan.name: plan.fingerprint for plan in run.plans}, "metric": desc}


def _failed(err: MetricFailed, run: Run) -> MetricSetupError:
    return MetricSetupError(f"{err} Nothing was scored; the clips are kept in {run.store.root}: rerun with "
                            f"stages=[score,report] in this run directory once it is fixed.")


def write_shares(run: Run, token: Optional[str]) -> List[Path]:
    """This worker's shares of every splittable set metric (multi-process runs only)."""
    shard = run.shard
    if shard.count == 1:
        return []
    written = []
    label = worker_label(shard)
    for plugin, metric, nfe in run.set_metrics:
        if not splits(metric):
            continue
        work_dir = run.run_dir / plugin.section
        started = time.time()
        try:
            # without one group over every worker (shard jobs, srun tasks) a worker holds only its own clips
            owners = not (shard.group and shard.config_count == 1)
            share = metric.score_share(refs(run, nfe, owners, False), shard.index, shard.count,
                                       items_reader(run, nfe), nfe, work_dir, label)
        except MetricFailed as err:
            raise _failed(err, run) from err
        share.update(settings(run, metric), token=token, seconds=time.time() - started)
        path = write_atomic(share_dir(work_dir, nfe) / f"{label}.json", json.dumps(share, indent=1, sort_keys=True))
        log.info("%s: share of %s at NFE %d scored in %.1f s: %s", label, metric.name, nfe, share["seconds"], path)
        written.append(path)
    return written


def read_shares(run: Run, metric: Any, nfe: int, work_dir: Path) -> List[Dict[str, Any]]:
    """The usable shares in the share folder: same clips, same metric settings."""
    want = settings(run, metric)
    out = []
    for path in sorted(share_dir(work_dir, nfe).glob("*.json")):
        try:
            share = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable share %s: %s", path, err)
            continue
        methods = share.get("methods") or {}
        stale = [m for m in methods if share.get("fingerprints", {}).get(m) != want["fingerprints"].get(m)]
        if stale or share.get("metric") != want["metric"]:
            log.warning("ignoring share %s: made with other settings (%s)", path.name,
                        f"methods {', '.join(stale)}" if stale else "metric settings")
            continue
        out.append(share)
    return out


def _wait_for_ranks(run: Run, folder: Path, token: Optional[str], timeout_s: float) -> None:
    """Rank 0 waits for the shares of its job's other ranks (written after the barrier)."""
    shard = run.shard
    if not (shard.group and shard.world > 1) or token is None:
        return
    prefix = f"shard{shard.index // shard.world}-" if shard.config_count > 1 else ""
    waiting = {f"{prefix}rank{r}" for r in range(1, shard.world)}
    deadline = time.time() + timeout_s
    while waiting and time.time() < deadline:
        for label in sorted(waiting):
            try:
                if json.loads((folder / f"{label}.json").read_text(encoding="utf-8")).get("token") == token:
                    waiting.discard(label)
            except (OSError, ValueError):
                pass
        if waiting:
            time.sleep(POLL_S)
    if waiting:
        log.warning("no share from %s after %.0f s: their units are scored here", ", ".join(sorted(waiting)),
                    timeout_s)


def score_set(run: Run, metric: Any, nfe: int, work_dir: Path) -> Dict[str, Any]:
    """A set metric on each method's stored frames at step count ``nfe``: merged from the
    workers' shares when it splits, else one method at a time (one method's frames in memory)."""
    try:
        if splits(metric):
            _wait_for_ranks(run, share_dir(work_dir, nfe), run.share_token, 60.0 * float(run.cfg.shard.timeout_min))
            shares = read_shares(run, metric, nfe, work_dir)
            return metric.merge_shares(refs(run, nfe, False, True), shares, items_reader(run, nfe), nfe, work_dir,
                                       worker_label(run.shard))
        out: Dict[str, Any] = {}
        for method, clips in _clips(run, nfe).items():
            records = run.store.read_many([c.key for c in clips], with_frames=True)
            items = [(c.prompt, c.video_index, records[c.key].frames) for c in clips
                     if c.key in records and records[c.key].frames is not None]
            out.update(metric.score_videos({method: items}, nfe, work_dir))
        return out
    except MetricFailed as err:
        raise _failed(err, run) from err
