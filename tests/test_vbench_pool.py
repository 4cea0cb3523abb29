"""VBench's pool for temporal_flickering (protocol.videos_per_prompt_by_dimension): the
prompts that dimension reads get 25 videos, so its static filter has 25 to choose 5 static
ones from, while the clips of indices 0..4 stay those of a run without the pool and the other
dimensions read only those."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from omegaconf import OmegaConf

from bench.plan import protocol
from bench.plan.config import compose, settings_problems
from bench.plan.description import run_description
from bench.plan.prompts import PromptSet, vbench_prompt_set
from bench.run.rundir import check_same_experiment
from metrics import vbench as vb
from metrics import vbench_static_filter as sf
from metrics.vbench_assets import static_filter_weights

POOL = {"temporal_flickering": 25}
TF = "temporal_flickering"


def _two_dimensions() -> PromptSet:
    """Three prompts: one temporal_flickering reads, one both dimensions read, one subject_consistency reads."""
    return PromptSet("vbench_standard", ["p-a", "p-b", "p-c"], ["a", "b", "c"], "0" * 64,
                     {"p-a": (TF,), "p-b": (TF, "subject_consistency"), "p-c": ("subject_consistency",)})


def _tf_prompts():
    return [p["prompt"] for p in vb.standard_prompts(distinct=True) if TF in p["dimensions"]]


# --------------------------------------------------------------------------- expansion

def test_the_prompts_of_temporal_flickering_get_the_pool_once_each():
    specs = protocol.expand(["m1", "m2"], [1, 4], _two_dimensions(), 5, base_seed=0, videos_by_dimension=POOL)
    per_class = {c: sorted(s.video_index for s in specs if (s.method, s.nfe, s.class_name) == ("m1", 4, c))
                 for c in ("p-a", "p-b", "p-c")}
    # p-b is read by both dimensions: made once with 25 videos, not 25 + 5
    assert per_class == {"p-a": list(range(25)), "p-b": list(range(25)), "p-c": list(range(5))}
    assert len(specs) == 2 * 2 * (25 + 25 + 5)
    assert len({s.key for s in specs}) == len(specs)
    assert protocol.clip_count(_two_dimensions(), 5, POOL) == 55
    assert protocol.pooled_classes(_two_dimensions(), 5, POOL) == ["p-a", "p-b"]
    # no pool, or a pool of a dimension no prompt of the run is read by: 5 each
    assert protocol.clip_count(_two_dimensions(), 5) == 15
    assert protocol.clip_count(_two_dimensions(), 5, {"color": 25}) == 15


def test_the_vbench_prompt_set_records_which_run_dimensions_read_each_prompt():
    both = vbench_prompt_set([TF, "subject_consistency"])
    tf = [c for c in both.classes if TF in both.dimensions[c]]
    assert len(tf) == len(_tf_prompts()) == 75
    assert protocol.clip_count(both, 5, POOL) == 75 * 25 + (len(both.classes) - 75) * 5
    # temporal_flickering not scored: its prompts are not made, and no prompt gets the pool
    only_sc = vbench_prompt_set(["subject_consistency"])
    assert all(d == ("subject_consistency",) for d in only_sc.dimensions.values())
    assert protocol.clip_count(only_sc, 5, POOL) == 5 * len(only_sc.classes)
    # a subset keeps what each prompt is read by
    sub = both.subset(num_classes=3)
    assert sub.dimensions == {c: both.dimensions[c] for c in both.classes[:3]}


def test_keys_and_seeds_of_the_first_five_videos_do_not_change_with_the_pool():
    prompts = vbench_prompt_set([TF, "subject_consistency"]).subset(num_classes=4)
    without = protocol.expand(["animatelcm"], [4], prompts, 5, base_seed=7, samples_per_cell=2)
    pooled = protocol.expand(["animatelcm"], [4], prompts, 5, base_seed=7, samples_per_cell=2,
                             videos_by_dimension=POOL)
    first = [s for s in pooled if s.video_index < 5]
    assert first == without   # same keys, seeds, prompts and kept frames, in the same order
    assert len(pooled) == 4 * 25   # the first four prompts are temporal_flickering's
    extra = [s for s in pooled if s.video_index >= 5]
    assert extra[0].key == f"animatelcm/nfe4/{prompts.classes[0]}/005"
    assert extra[0].seed == protocol.clip_seed(7, prompts.classes[0], 5)
    assert len({s.seed for s in pooled if s.class_name == prompts.classes[0]}) == 25


def test_a_pool_below_videos_per_prompt_is_refused_by_the_expansion():
    with pytest.raises(ValueError, match="below protocol.videos_per_prompt=5") as err:
        protocol.expand(["m"], [4], _two_dimensions(), 5, 0, videos_by_dimension={TF: 3})
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- config and description

def test_experiment_vbench_has_the_pool_and_describes_it():
    cfg = compose(["experiment=vbench"])
    assert dict(cfg.protocol.videos_per_prompt_by_dimension) == POOL
    assert settings_problems(cfg) == []
    assert "25 for temporal_flickering" in cfg.description
    dims = list(cfg.metrics.vbench.options.dimensions)
    prompts = vbench_prompt_set(dims)
    clips = protocol.clip_count(prompts, 5, cfg.protocol.videos_per_prompt_by_dimension)
    assert (len(prompts.classes), clips) == (944, 869 * 5 + 75 * 25) == (944, 6220)
    text = run_description(cfg, prompts=prompts)
    assert "944 prompts x 5 videos (25 for the 75 prompts of temporal_flickering) x NFE 4 = 6,220 clips" in text
    # without the loaded prompts the pool is named and the clips are not miscounted
    assert "5 videos (25 for temporal_flickering's prompts)" in run_description(cfg)
    assert "clips" not in run_description(cfg, n_prompts=944).split(" of 16x")[0]
    # the default protocol has no pool and its description is as before
    plain = compose([])
    assert plain.protocol.videos_per_prompt_by_dimension is None
    assert "; 3 classes x 2 videos x NFE 1/2/4/8 = 96 clips of 16x64x64;" in run_description(plain, n_prompts=3)


def test_the_pool_is_turned_off_as_run_folders_made_before_it_record_it(tmp_path):
    """null, the value a run folder recorded before the setting existed reads as: such a folder resumes."""
    cfg = compose(["experiment=vbench", "protocol.videos_per_prompt_by_dimension=null"])
    assert cfg.protocol.videos_per_prompt_by_dimension is None and settings_problems(cfg) == []
    recorded = OmegaConf.to_container(cfg, resolve=True)
    del recorded["protocol"]["videos_per_prompt_by_dimension"]
    (tmp_path / "config.resolved.yaml").write_text(OmegaConf.to_yaml(recorded))
    check_same_experiment(cfg, tmp_path)   # resumes: no error
    with pytest.raises(ValueError, match="protocol.videos_per_prompt_by_dimension"):
        check_same_experiment(compose(["experiment=vbench"]), tmp_path)   # the pool is another protocol
    off = compose(["experiment=vbench", "~protocol.videos_per_prompt_by_dimension.temporal_flickering"])
    assert dict(off.protocol.videos_per_prompt_by_dimension) == {} and settings_problems(off) == []


@pytest.mark.parametrize("override, says", [
    (["protocol.videos_per_prompt_by_dimension.temporal_flickering=30"], "5 to 25 videos per prompt"),
    (["protocol.videos_per_prompt_by_dimension.temporal_flickering=3"], "5 to 25 videos per prompt"),
    (["+protocol.videos_per_prompt_by_dimension.color=10"],
     "only temporal_flickering samples a pool.*'~protocol.videos_per_prompt_by_dimension.color'"),
    (["protocol.prompt_set=classnames"], "needs prompt_set=vbench_standard"),
])
def test_a_bad_pool_setting_is_one_clear_line(override, says):
    problems = settings_problems(compose(["experiment=vbench"] + override))
    assert len(problems) == 1
    (line,) = problems
    assert line.startswith("protocol.videos_per_prompt_by_dimension=") and "\n" not in line
    assert re.search(says, line), line


# --------------------------------------------------------------------------- export and the static filter

def _clip(moving: bool, side: int = 64, frames: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.kron(rng.integers(0, 256, (side // 4, side // 4, 3)), np.ones((4, 4, 1))).astype(np.uint8)
    return np.stack([np.roll(img, 4 * t if moving else 0, axis=1) for t in range(frames)])


def test_export_takes_indices_0_to_24_for_temporal_flickering_prompts_only(tmp_path):
    tf = _tf_prompts()[0]
    other = next(p["prompt"] for p in vb.standard_prompts() if TF not in p["dimensions"])
    still = tmp_path / "still.mp4"
    vb.export_for_vbench([("one still clip", 0, _clip(False))], tmp_path, mode="custom_input")
    (tmp_path / "one still clip-0.mp4").rename(still)
    names = vb.export_for_vbench([(tf, i, str(still)) for i in range(25)] + [(other, i, str(still)) for i in range(5)],
                                 tmp_path / "videos")
    assert sorted(names) == sorted([f"{tf}-{i}.mp4" for i in range(25)] + [f"{other}-{i}.mp4" for i in range(5)])
    with pytest.raises(ValueError, match="0..24 for temporal_flickering's static-filter pool, got 25 for a "
                                         "temporal_flickering prompt") as err:
        vb.export_for_vbench([(tf, 25, str(still))], tmp_path / "x")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="got 5 for a prompt temporal_flickering does not read"):
        vb.export_for_vbench([(other, 5, str(still))], tmp_path / "y")
    # custom_input mode has no index limit
    assert vb.export_for_vbench([(other, 30, str(still))], tmp_path / "z", mode="custom_input")


def test_vbench_reads_indices_0_to_4_of_a_pooled_prompt_for_its_other_dimensions(tmp_path):
    """The pooled folder serves every dimension: VBench's standard mode looks up {prompt}-0..4 only."""
    from vbench import VBench  # heavy: the vbench package, for its own video lookup

    prompt = _tf_prompts()[0]
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(25):
        (folder / f"{prompt}-{i}.mp4").write_bytes(b"")
    info = tmp_path / "info.json"
    info.write_text(json.dumps([{"prompt_en": prompt, "dimension": [TF, "subject_consistency"]}]))
    listed = VBench("cpu", str(info), str(tmp_path / "out")).build_full_info_json(
        str(folder), "pool", ["subject_consistency"])
    (entry,) = json.loads(open(listed).read())
    assert [p.rsplit("/", 1)[1] for p in entry["video_list"]] == [f"{prompt}-{i}.mp4" for i in range(5)]


def _shift_flow(a, b):
    """A uniform flow as large as the frames' mean difference: zero for a still clip (stands in for RAFT)."""
    d = float(np.abs(a.astype(float) - b.astype(float)).mean())
    return np.stack([np.full(a.shape[:2], d), np.zeros(a.shape[:2])])


def test_the_static_filter_chooses_from_the_whole_pool(tmp_path, monkeypatch):
    """Seven moving videos among the 25 of a prompt: the filter still finds 5 static ones
    (in file-name order, as VBench's script examines them), which 5 videos could not give."""
    tf, other = _tf_prompts()[0], next(p["prompt"] for p in vb.standard_prompts() if TF not in p["dimensions"])
    items = [(tf, i, _clip(moving=i < 7, side=128)) for i in range(25)] + \
            [(other, i, _clip(False, side=128)) for i in range(5)]
    vb.export_for_vbench(items, tmp_path / "videos")
    static_filter_weights(tmp_path / "cache").parent.mkdir(parents=True)
    static_filter_weights(tmp_path / "cache").write_bytes(b"unread: a stand-in flow replaces RAFT")
    monkeypatch.setattr(sf, "RaftFlow", lambda weights, device: _shift_flow)
    res = vb.evaluate(tmp_path / "videos", "pool", [TF], out_dir=tmp_path / "o", device="cpu",
                      cache_dir=tmp_path / "cache", require_complete=False)
    assert res["failed"] == {} and res["non_standard"] == {}
    # sorted names: -0, -1, -10, -11, ...: the moving -0 and -1 are examined, then -10..-14 are static
    assert res["static_filter"]["kept"] == {tf: [f"{tf}-{i}.mp4" for i in range(10, 15)]}
    assert set(res["per_video"][TF]) == {f"{tf}-{i}.mp4" for i in range(10, 15)}
    assert res["n_videos"][TF] == 5
    assert not any("fewer than 5 static" in n for n in res["notes"])
