"""Sharding: which process makes which clip, torchrun and SLURM environments, and
multi-process runs that end exactly like one process."""
from collections import Counter

import pytest

from bench.generate.runner import generate_all
from bench.generate.store import ClipStore
from bench.plan.prompts import classname_captions
from bench.plan.protocol import clip_key, expand
from bench.plan.shard import Shard, detect, rank_device, shard_of
from tests import e2e
from tests.fakes import SETTINGS, FakeMetric, FakeModel, plans


@pytest.fixture(autouse=True)
def _no_launcher_env(monkeypatch):
    # the suite itself may run under srun or torchrun: this process must not shard
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS",
                 "SLURM_LOCALID", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)


def table1_keys():
    specs = expand(["ddim", "dpmpp", "animatelcm", "animatelcm_r"], [1, 2, 4, 8], classname_captions(), 24, 0)
    return [s.key for s in specs]


def test_assignment_is_a_stable_hash_of_the_key():
    # pinned: a change would silently re-assign every clip of every sharded run in flight
    key = clip_key("animatelcm", 4, "Archery", 0)
    assert [shard_of(key, n) for n in (1, 2, 3, 8)] == [0, 1, 0, 1]
    assert shard_of(key, 8) == shard_of(key, 8)
    with pytest.raises(ValueError):
        shard_of(key, 0)


@pytest.mark.parametrize("count", [2, 3, 8])
def test_shards_partition_table1_evenly(count):
    keys = table1_keys()
    owners = [[i for i in range(count) if Shard(index=i, count=count).owns(k)] for k in keys]
    assert all(len(o) == 1 for o in owners), "every clip has exactly one owner"
    sizes = Counter(o[0] for o in owners)
    assert set(sizes) == set(range(count))
    # 38,784 clips: a hash split is within 2% of an even split
    assert max(sizes.values()) / min(sizes.values()) < 1.04, sizes


def test_assignment_does_not_depend_on_position():
    keys = table1_keys()
    reordered = list(reversed(keys))[:500]
    assert [shard_of(k, 4) for k in reordered] == [shard_of(k, 4) for k in keys[::-1][:500]]
    # adding a method does not move the clips of the others (positions would)
    more = expand(["aaa_new", "ddim"], [1], classname_captions(), 2, 0)
    for s in more:
        if s.method == "ddim":
            assert shard_of(s.key, 5) == shard_of(clip_key("ddim", 1, s.class_name, s.video_index), 5)


def test_detect_from_config_torchrun_and_slurm():
    assert detect(env={}) == Shard()
    s = detect(1, 4, env={})
    assert (s.index, s.count, s.source, s.group, s.scores) == (1, 4, "config", False, False)
    t = detect(env={"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert (t.index, t.count, t.local_rank, t.source, t.group, t.scores) == (1, 2, 1, "torchrun", True, False)
    assert detect(env={"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}).scores   # rank 0 scores after the barrier
    slurm = {"SLURM_PROCID": "3", "SLURM_STEP_NUM_TASKS": "4", "SLURM_LOCALID": "1"}
    s = detect(env=slurm)
    assert (s.index, s.count, s.local_rank, s.source, s.group) == (3, 4, 1, "slurm", False)
    assert detect(env={**slurm, "MASTER_ADDR": "node1", "MASTER_PORT": "29500"}).group
    # an sbatch script running python itself: one process although the job has 4 tasks
    assert detect(env={"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}) == Shard()
    # a job array of torchrun jobs: shards nest
    n = detect(2, 4, env={"RANK": "1", "WORLD_SIZE": "2"})
    assert (n.index, n.count, n.source, n.scores) == (5, 8, "config+torchrun", False)
    assert detect(1, 4, use_env=False, env={"RANK": "1", "WORLD_SIZE": "2"}).count == 4


@pytest.mark.parametrize("index,count,match", [(2, None, "without shard.count"), (4, 4, "outside 0..3"),
                                               (0, 0, "must be >= 1"), (-1, 2, "outside")])
def test_bad_shard_settings(index, count, match):
    with pytest.raises(ValueError, match=match):
        detect(index, count, env={})


def test_rank_device():
    two = detect(env={"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert rank_device("cuda", two) == "cuda:1"
    assert rank_device("cuda:0", two) == "cuda:0" and rank_device("cpu", two) == "cpu"
    assert rank_device("cuda", Shard()) == "cuda"


def _snapshot(store):
    return {k: (r.meta["seed"], r.features["fake/v1"].tobytes()) for k, r in
            ((k, store.read(k)) for k in store.keys())}


def test_shards_fill_one_store_exactly_like_one_process(tmp_path):
    whole = ClipStore(tmp_path / "whole")
    generate_all(plans(), whole, [FakeMetric()], SETTINGS, lambda p: FakeModel())
    shared = ClipStore(tmp_path / "shared")
    made = []
    for i in range(3):
        summary = generate_all(plans(), shared, [FakeMetric()], SETTINGS, lambda p: FakeModel(),
                               shard=Shard(index=i, count=3, source="config", config_count=3))
        made.append(summary.made)
        assert summary.made + summary.not_owned == 24 and summary.shard["index"] == i
    assert sum(made) == 24 and min(made) > 0
    assert _snapshot(shared) == _snapshot(whole)


def test_resume_with_another_shard_count_makes_only_what_is_missing(tmp_path):
    store = ClipStore(tmp_path / "store")
    generate_all(plans(), store, [FakeMetric()], SETTINGS, lambda p: FakeModel(),
                 shard=Shard(index=0, count=4, source="config", config_count=4))
    before = {k: store.path(k).stat().st_mtime_ns for k in store.keys()}
    total = 0
    for i in range(3):   # the rest with 3 processes
        total += generate_all(plans(), store, [FakeMetric()], SETTINGS, lambda p: FakeModel(),
                              shard=Shard(index=i, count=3, source="config", config_count=3)).made
    assert total == 24 - len(before)
    assert all(store.path(k).stat().st_mtime_ns == t for k, t in before.items()), "nothing is remade"
    assert len(store.keys()) == 24


@pytest.mark.slow
def test_torchrun_two_processes_end_like_one(tmp_path, cache_dir, e2e_reference):
    run_dir = tmp_path / "torchrun"
    out = e2e.run([f"hydra.run.dir={run_dir}", *e2e.SMALL], cache_dir, torchrun=2)
    assert "shard 1 of 2 (torchrun)" in out and "rank 0 scores them" in out
    e2e.assert_same_run(e2e_reference.run_dir, run_dir)
    assert e2e.no_leftovers(run_dir) is None
    import json

    generation = json.loads((run_dir / "results.json").read_text())["provenance"]["generation"]
    assert generation["shard"] == {"index": 0, "count": 2, "source": "torchrun", "process_group": True,
                                   "assignment": "sha256(clip key) mod count"}
    assert generation["store"]["batch_sizes_used"] == {"ddim": [1], "animatelcm": [1]}


@pytest.mark.slow
def test_submitit_job_array_of_three_shards_then_a_score_job(tmp_path, cache_dir, e2e_reference):
    run_dir, sweep = tmp_path / "run", tmp_path / "sweep"
    out = e2e.run(["-m", "hydra/launcher=submitit_local", "shard.count=3", "shard.index=range(3)",
                   "stages=[preflight,generate]", f"run_dir={run_dir}", f"hydra.sweep.dir={sweep}",
                   *e2e.SMALL], cache_dir)
    assert len(e2e.store_files(run_dir)) == e2e.N_CLIPS, out[-3000:]
    assert not (run_dir / "results.json").exists()
    logs = "".join(p.read_text() for p in sweep.rglob("*_log.out"))
    for i in range(3):
        assert f"shard {i} of 3 (config)" in logs
    made = sorted(int(line.split("Generated ")[1].split()[0]) for line in logs.splitlines() if "Generated " in line)
    assert sum(made) == e2e.N_CLIPS and len(made) == 3, "each clip made once, by one shard job"

    out = e2e.run([f"run_dir={run_dir}", "stages=[score,report]", f"hydra.run.dir={tmp_path / 'score'}",
                   *e2e.SMALL], cache_dir)
    assert "finished in" in out
    e2e.assert_same_run(e2e_reference.run_dir, run_dir)
    assert e2e.no_leftovers(run_dir) is None
