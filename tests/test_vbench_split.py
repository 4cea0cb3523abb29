"""VBench split over workers: the plan (deterministic, balanced, every unit once), the
merge (exact, and its refusals), and multi-process runs whose VBench scores equal one
process's."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from metrics import vbench as vb
from metrics import vbench_split as split
from metrics.vbench_metric import VBenchSetMetric
from tests import e2e

DIMS = ["temporal_flickering", "subject_consistency", "object_class", "dynamic_degree"]


def _videos(methods=("a", "b"), prompts=12, per_prompt=5, owners=0):
    out = []
    for m in methods:
        for p in range(prompts):
            for i in range(per_prompt):
                key = f"{m}/nfe4/prompt{p:02d}/{i:03d}"
                owner = (p * per_prompt + i) % owners if owners else None
                out.append(split.Video(m, key, f"prompt {p}", owner, i))
    return out


def _cells(plan):
    return [(u.method, u.dimension, k) for mine in plan for u in mine for k in u.videos]


# --------------------------------------------------------------------------- plan

@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_every_video_and_dimension_is_scored_exactly_once(workers):
    videos = _videos(prompts=40)
    plan = split.assign(videos, DIMS, workers)
    cells = _cells(plan)
    assert len(cells) == len(set(cells)) == len(videos) * len(DIMS)
    assert len(plan) == workers


def test_the_plan_is_the_same_whatever_the_order_of_the_inputs():
    videos = _videos(prompts=30)
    shuffled = list(videos)
    random.Random(3).shuffle(shuffled)
    assert split.assign(videos, DIMS, 4) == split.assign(shuffled, list(reversed(DIMS)), 4)


@pytest.mark.parametrize("workers", [2, 3, 5, 8])
def test_loads_differ_by_at_most_one_unit(workers):
    plan = split.assign(_videos(prompts=60), DIMS, workers)
    loads = split.loads(plan)
    biggest = max(u.cost for mine in plan for u in mine)
    assert max(loads) - min(loads) <= biggest + 1e-9
    # costly dimensions are cut so that every worker has work
    assert min(loads) > 0


def test_cheap_dimensions_stay_one_unit_and_whole_prompts_stay_together():
    videos = _videos(prompts=40)
    plan = split.assign(videos, DIMS, 4)
    flicker = [u for mine in plan for u in mine if u.dimension == "temporal_flickering"]
    # 200 videos x 0.2 s per method is below MIN_UNIT_SECONDS: one unit each
    assert sorted(len(u.videos) for u in flicker) == [200, 200]
    # a costly dimension cut into pieces never splits a prompt where the static filter needs it whole
    pieces = split.units(videos, ["object_class"], 4, whole_prompt=["object_class"])
    assert len(pieces) > 2
    prompt_of = {v.key: v.prompt for v in videos}
    seen = {}
    for n, u in enumerate(pieces):
        for k in u.videos:
            assert seen.setdefault((u.method, prompt_of[k]), n) == n


def test_clips_of_shard_jobs_go_to_the_job_that_made_them():
    videos = _videos(prompts=20, owners=3)
    plan = split.assign(videos, ["subject_consistency", "temporal_flickering"], 3, whole_prompt=())
    owner = {v.key: v.owner for v in videos}
    for w, mine in enumerate(plan):
        assert mine and all(owner[k] == w for u in mine for k in u.videos)


def test_standard_mode_plans_only_the_videos_a_dimension_reads():
    videos = _videos(prompts=4, per_prompt=6)
    plan = split.assign(videos, ["subject_consistency"], 2, reads=lambda d, p, i: p != "prompt 0" and i < 5)
    assert len(_cells(plan)) == 2 * 3 * 5


def test_cost_figures_cover_every_dimension_and_add_up_to_about_half_a_day():
    assert set(split.DIMENSION_SECONDS) == set(vb.ALL_DIMENSIONS)
    suite = sum(split.video_seconds(d) * 5 for p in vb.standard_prompts() for d in p["dimensions"])
    assert 10 * 3600 < suite < 14 * 3600
    assert split.video_seconds("object_class", 32) == 2 * split.DIMENSION_SECONDS["object_class"]
    with pytest.raises(ValueError, match="no cost figure"):
        split.video_seconds("flicker")


def test_balance_estimates_the_workers_of_a_plan():
    parts = {"object_class": 6000.0, "subject_consistency": 600.0, "temporal_flickering": 20.0}
    loads = split.balance(parts, 4)
    assert sum(loads) == pytest.approx(6620.0) and max(loads) - min(loads) <= 6620.0 / 16 + 1e-9
    assert split.balance({"temporal_flickering": 20.0}, 3) == [20.0, 0.0, 0.0]   # too cheap to split


def test_preflight_prints_vbench_time_per_dimension_and_per_worker(tmp_path):
    from bench.preflight.checklist import preflight
    from bench.preflight.estimates import SCORING_STAGE
    from bench.preflight.plan_text import format_plan
    from tests.conftest import compose

    overrides = ["experiment=vbench", "preflight.time_on=H100",
                 "metrics.vbench.options.dimensions=[temporal_flickering,object_class]"]
    one = preflight(compose(overrides), tmp_path / "run")
    four = preflight(compose(overrides + ["shard.count=4"]), tmp_path / "run")
    scoring = {k: v for k, v in one.plan.time_stages.items() if k.startswith(SCORING_STAGE)}
    # 79 object_class prompts x 5 videos x 16 s on an H100 (the datasheet peak ratio is 1)
    assert scoring[SCORING_STAGE + "VBench object_class"] == pytest.approx(79 * 5 * 16.0)
    assert sum(scoring.values()) <= one.plan.time_s
    text = format_plan(four)
    assert "scoring      VBench ~" in text and "object_class 105 min" in text
    assert "VBench split over 4 workers" in text and "VBench split" not in format_plan(one)


# --------------------------------------------------------------------------- merge

def _share(label, dim, values, units=None, **extra):
    part = {"units": {dim: sorted(units or values)}, "per_video": {dim: dict(values)},
            "names": {k: f"{k}.mp4" for k in (units or values)}, **extra}
    return {"label": label, "methods": {"m": part}}


def test_merge_means_the_per_video_values_and_records_who_scored_what():
    shares = [_share("rank0", "subject_consistency", {"k1": 0.5, "k2": 0.7}),
              _share("rank1", "subject_consistency", {"k3": 0.9})]
    out = split.merge(shares, {"m": {"subject_consistency": ["k1", "k2", "k3"]}})["m"]
    assert out["scores"]["subject_consistency"] == pytest.approx(0.7, rel=1e-15)
    assert out["scored_by"] == {"rank0": ["k1", "k2"], "rank1": ["k3"]}
    # the same video scored twice with the same value (a rerun of a unit) is fine
    again = split.merge(shares + [_share("main", "subject_consistency", {"k3": 0.9})],
                        {"m": {"subject_consistency": ["k1", "k2", "k3"]}})["m"]
    assert again["scores"] == out["scores"]


def test_merge_refuses_disagreeing_or_missing_videos_and_mixed_skips():
    want = {"m": {"subject_consistency": ["k1", "k2"]}}
    with pytest.raises(ValueError, match="scored twice on subject_consistency with different values"):
        split.merge([_share("rank0", "subject_consistency", {"k1": 0.5, "k2": 0.1}),
                     _share("rank1", "subject_consistency", {"k2": 0.2})], want)
    with pytest.raises(ValueError, match="1 of 2 videos of method 'm' were not scored"):
        split.merge([_share("rank0", "subject_consistency", {"k1": 0.5})], want)
    with pytest.raises(ValueError, match="skipped on rank1"):
        split.merge([_share("rank0", "subject_consistency", {"k1": 0.5}),
                     _share("rank1", "subject_consistency", {}, units=["k2"], skipped={"subject_consistency": "x"})],
                    want)
    # a unit one worker skipped (its node lacks the weights) and the merging process scored
    fine = split.merge([_share("rank0", "subject_consistency", {"k1": 0.5}),
                        _share("rank1", "subject_consistency", {}, units=["k2"], skipped={"subject_consistency": "x"}),
                        _share("main", "subject_consistency", {"k2": 0.7})], want)["m"]
    assert fine["scores"]["subject_consistency"] == pytest.approx(0.6) and fine["skipped"] == {}
    assert set(fine["scored_by"]) == {"rank0", "main"}
    # skipped everywhere: a skip with its reason, as one process reports it
    out = split.merge([_share("rank0", "subject_consistency", {}, units=["k1", "k2"],
                              skipped={"subject_consistency": "no weights"})], want)["m"]
    assert out["skipped"] == {"subject_consistency": "no weights"} and out["scores"] == {}


def test_merge_joins_the_static_filter_records_of_whole_prompts():
    def rec(name, prompt, kept):
        return {"applied": True, "weights": "w", "per_prompt": 5,
                "videos": {name: {"prompt": prompt, "static": kept, "kept": kept}}, "kept": {prompt: [name] if kept else []}}
    dim = "temporal_flickering"
    shares = [_share("rank0", dim, {"k1": 0.99}, static_filter=rec("k1.mp4", "p1", True)),
              _share("rank1", dim, {}, units=["k2"], static_filter=rec("k2.mp4", "p2", False))]
    out = split.merge(shares, {"m": {dim: ["k1", "k2"]}})["m"]
    assert out["static_filter"]["kept"] == {"p1": ["k1.mp4"], "p2": []}
    assert set(out["static_filter"]["videos"]) == {"k1.mp4", "k2.mp4"}
    assert out["scores"][dim] == 0.99
    shares[1]["methods"]["m"]["static_filter"] = {"applied": False, "reason": "no RAFT weights"}
    with pytest.raises(ValueError, match="static filter ran on some workers"):
        split.merge(shares, {"m": {dim: ["k1", "k2"]}})


# --------------------------------------------------------------------------- real vbench, split vs one process

def _clip(seed):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, (1, 32, 32, 3))
    return np.clip(base + rng.integers(0, 40, (16, 1, 1, 1)), 0, 255).astype(np.uint8)


def test_split_scores_equal_one_process_and_gaps_are_scored_by_the_merger(tmp_path, monkeypatch):
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "cache"))   # no RAFT: no static filter
    items = {m: {f"{m}/nfe4/c{p}/{i:03d}": (f"class {p}", i, _clip(ord(m) * 100 + p * 10 + i))
                 for p in range(3) for i in range(2)} for m in ("x", "y")}
    refs = {m: [(k, v[0], v[1], None) for k, v in sorted(d.items())] for m, d in items.items()}

    def items_of(method, keys):
        return {k: items[method][k] for k in keys if k in items[method]}

    def metric():
        return VBenchSetMetric(vb.evaluate, ["temporal_flickering"], device="cpu")

    one = metric().merge_shares(refs, [], items_of, 4, tmp_path / "one", "main")
    assert one["x"]["scored_by"] == {"main": sorted(f"class {p}-{i}.mp4" for p in range(3) for i in range(2))}
    # two workers, units cut finer than the figures would (to split one method's videos)
    m = metric()
    per_method = [split.Unit(meth, "temporal_flickering", tuple(k for k, *_ in refs[meth][lo:hi]), 1.0)
                  for meth in refs for lo, hi in ((0, 3), (3, 6))]
    shares = [m.score_share(refs, 0, 2, items_of, 4, tmp_path / "split", "rank0", units=per_method[0::2]),
              m.score_share(refs, 1, 2, items_of, 4, tmp_path / "split", "rank1", units=per_method[1::2])]
    merged = metric().merge_shares(refs, shares, items_of, 4, tmp_path / "split", "rank0")
    for meth in ("x", "y"):
        a, b = one[meth]["scores"]["temporal_flickering"], merged[meth]["scores"]["temporal_flickering"]
        assert b == pytest.approx(a, rel=1e-12, abs=0)
        numbers = ("scores", "scored_by", "total", "quality", "semantic")
        assert {k: v for k, v in merged[meth].items() if k not in numbers} == \
            {k: v for k, v in one[meth].items() if k not in numbers}
        assert one[meth]["quality"] is not None
        for k in ("total", "quality", "semantic"):
            assert (merged[meth][k] is None) == (one[meth][k] is None)
            assert one[meth][k] is None or merged[meth][k] == pytest.approx(one[meth][k], rel=1e-12, abs=0)
        assert set(merged[meth]["scored_by"]) == {"rank0", "rank1"}
        assert merged[meth]["n_videos"] == 6 and merged[meth]["static_filter"] == one[meth]["static_filter"]
    # a worker that never wrote its share costs time, not correctness: the merger scores its units
    gaps = metric().merge_shares(refs, shares[:1], items_of, 4, tmp_path / "gaps", "main")
    for meth in ("x", "y"):
        assert gaps[meth]["scores"]["temporal_flickering"] == pytest.approx(
            one[meth]["scores"]["temporal_flickering"], rel=1e-12, abs=0)
        assert set(gaps[meth]["scored_by"]) == {"rank0", "main"}
    json.dumps(shares)   # a share is plain JSON


def test_standard_mode_split_reports_what_one_process_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "cache"))
    tf = [p["prompt"] for p in vb.standard_prompts() if "temporal_flickering" in p["dimensions"]][:3]
    items = {f"m/nfe4/p{n}/{i:03d}": (p, i, _clip(n * 10 + i)) for n, p in enumerate(tf) for i in range(5)}
    refs = {"m": [(k, v[0], v[1], None) for k, v in sorted(items.items())]}

    def items_of(method, keys):
        return {k: items[k] for k in keys}

    def metric():
        return VBenchSetMetric(vb.evaluate, ["temporal_flickering"], mode="vbench_standard", device="cpu")

    one = metric().merge_shares(refs, [], items_of, 4, tmp_path / "one", "main")["m"]
    m = metric()
    halves = [split.Unit("m", "temporal_flickering", tuple(k for k, *_ in refs["m"][lo:hi]), 1.0)
              for lo, hi in ((0, 7), (7, 15))]
    shares = [m.score_share(refs, w, 2, items_of, 4, tmp_path / "split", f"shard{w}", units=[halves[w]])
              for w in range(2)]
    merged = metric().merge_shares(refs, shares, items_of, 4, tmp_path / "split", "main")["m"]
    assert one["missing_videos"] == merged["missing_videos"] == {"temporal_flickering": 375 - 15}
    assert merged["scores"]["temporal_flickering"] == pytest.approx(one["scores"]["temporal_flickering"],
                                                                    rel=1e-12, abs=0)
    assert sorted(n for names in merged["scored_by"].values() for n in names) == one["scored_by"]["main"]


def test_shares_made_from_other_clips_or_settings_are_ignored(tmp_path):
    from types import SimpleNamespace

    from bench.run import set_scoring

    metric = VBenchSetMetric(vb.evaluate, ["temporal_flickering"], device="cpu")
    run = SimpleNamespace(plans=[SimpleNamespace(name="x", fingerprint="f1")])
    folder = set_scoring.share_dir(tmp_path, 4)
    folder.mkdir(parents=True)
    good = {"label": "rank0", "methods": {"x": {}}, **set_scoring.settings(run, metric)}
    (folder / "rank0.json").write_text(json.dumps(good))
    (folder / "rank1.json").write_text(json.dumps({**good, "label": "rank1", "fingerprints": {"x": "old"}}))
    other = VBenchSetMetric(vb.evaluate, ["subject_consistency"], device="cpu")
    (folder / "rank2.json").write_text(json.dumps({**good, "label": "rank2", **set_scoring.settings(run, other)}))
    (folder / "rank3.json").write_text("{half")
    assert [s["label"] for s in set_scoring.read_shares(run, metric, 4, tmp_path)] == ["rank0"]
    assert set_scoring.worker_label(split_shard(2, 4, 2)) == "shard1-rank0"


def split_shard(index, count, world):
    from bench.plan.shard import Shard

    return Shard(index=index, count=count, world=world, rank=index % world, config_count=count // world,
                 source="config+torchrun")


# --------------------------------------------------------------------------- multi-process runs (slow)

# tests/e2e.py's small experiment (12 clips) with VBench temporal_flickering at NFE 2 as its only metric
SPLIT_RUN = [o for o in e2e.SMALL if not o.startswith(("metrics.vbench.enabled", "++metrics.fvd"))] + [
    "metrics.fvd.enabled=false", "metrics.kvd.enabled=false", "metrics.fvd_inf.enabled=false",
    "metrics.vbench.options.nfe=2", "metrics.vbench.options.dimensions=[temporal_flickering]"]


@pytest.fixture(scope="module")
def vbench_env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:   # an empty VBench cache: no RAFT, no static filter
        mp.setenv("VBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("vbench_cache")))
        yield


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, cache_dir, vbench_env):
    run_dir = tmp_path_factory.mktemp("vbench_single") / "run"
    e2e.run([f"hydra.run.dir={run_dir}", *SPLIT_RUN], cache_dir)
    return _section(run_dir)


def _section(run_dir):
    return json.loads((run_dir / "results.json").read_text())["vbench"]


def _assert_same_scores(expected, actual):
    assert sorted(expected) == sorted(actual) == ["animatelcm", "ddim"]
    for method, want in expected.items():
        got = actual[method]
        assert got["scores"] and set(got["scores"]) == set(want["scores"])
        for dim, value in want["scores"].items():
            assert got["scores"][dim] == pytest.approx(value, rel=1e-12, abs=0), (method, dim)
        numbers = ("scores", "scored_by", "total", "quality", "semantic")
        assert {k: v for k, v in got.items() if k not in numbers} == {k: v for k, v in want.items() if k not in numbers}
        assert got["quality"] == pytest.approx(want["quality"], rel=1e-12, abs=0)
        assert want["scored_by"] == {"main": sorted(f"A video of apply eye makeup.-{i}.mp4" for i in range(3))}


@pytest.mark.slow
def test_torchrun_ranks_share_vbench_and_the_merge_equals_one_process(tmp_path, cache_dir, one_process):
    run_dir = tmp_path / "torchrun"
    out = e2e.run([f"hydra.run.dir={run_dir}", *SPLIT_RUN], cache_dir, torchrun=2)
    assert "rank1: share of vbench at NFE 2" in out and "rank0: share of vbench at NFE 2" in out
    section = _section(run_dir)
    _assert_same_scores(one_process, section)
    # two units (one per method) of equal cost: one for each rank
    assert sorted(label for entry in section.values() for label in entry["scored_by"]) == ["rank0", "rank1"]
    shares = sorted(p.name for p in (run_dir / "vbench" / "shares" / "nfe2").iterdir())
    assert shares == ["rank0.json", "rank1.json"]


@pytest.mark.slow
def test_shard_jobs_share_vbench_and_the_score_job_merges_like_one_process(tmp_path, cache_dir, one_process):
    run_dir = tmp_path / "run"
    for i in range(2):
        out = e2e.run([f"shard.index={i}", "shard.count=2", f"run_dir={run_dir}",
                       f"hydra.run.dir={tmp_path / f'job{i}'}", *SPLIT_RUN], cache_dir)
        assert f"shard{i}: share of vbench at NFE 2" in out
    assert not (run_dir / "results.json").exists()
    e2e.run([f"run_dir={run_dir}", "stages=[score,report]", f"hydra.run.dir={tmp_path / 'score'}", *SPLIT_RUN],
            cache_dir)
    section = _section(run_dir)
    _assert_same_scores(one_process, section)
    # each job scored the clips it made (planned by owner), nothing was left to the score job
    by = {}
    for entry in section.values():
        for label, names in entry["scored_by"].items():
            by.setdefault(label, []).extend(names)
    assert sorted(by) == ["shard0", "shard1"] and sum(map(len, by.values())) == 6
