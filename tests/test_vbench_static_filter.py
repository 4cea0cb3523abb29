"""VBench's static filter for temporal_flickering: its constants, its decision on flow fields
made by hand, the selection on footage whose flow is known by construction, the real RAFT
forward with a weights file in VBench's format, and the filter inside metrics.vbench.evaluate.

RAFT with random weights cannot tell a pan from a still clip (its flow is noise of several
pixels for both), so the keep/drop decision is tested with an exact flow for circular
shifts (phase correlation) standing in for RAFT, and the RAFT path is tested for what random
weights do determine: the file format, the frame pairs, the measure of the flow it returns,
and exactly zero flow (hence "static") when the weights' last flow layer is zero.
"""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from common.errors import UnusableFile
from metrics import vbench as vb
from metrics import vbench_static_filter as sf
from metrics.vbench_assets import static_filter_weights

SIDE, FRAMES, PAN_PX = 128, 8, 4


def _texture(seed=0, side=SIDE):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (side // 4, side // 4, 3))
    return np.kron(coarse, np.ones((4, 4, 1))).astype(np.uint8)


def _still(seed=0, side=SIDE, frames=FRAMES):
    return np.repeat(_texture(seed, side)[None], frames, axis=0)


def _pan(seed=0, side=SIDE, frames=FRAMES):
    img = _texture(seed, side)
    return np.stack([np.roll(img, PAN_PX * t, axis=1) for t in range(frames)])


def _exact_flow(a, b):
    """The flow from a to b when b is a circular shift of a: phase correlation, a uniform field."""
    fa, fb = np.fft.fft2(a.astype(float).mean(-1)), np.fft.fft2(b.astype(float).mean(-1))
    cross = fb * np.conj(fa)
    peak = np.unravel_index(np.argmax(np.real(np.fft.ifft2(cross / (np.abs(cross) + 1e-12)))), cross.shape)
    dy, dx = ((p + n // 2) % n - n // 2 for p, n in zip(peak, cross.shape))
    return np.stack([np.full(a.shape[:2], dx, float), np.full(a.shape[:2], dy, float)])


def _raft_state(seed=0, zero_head=False):
    import torch  # heavy: only the RAFT tests
    from vbench.third_party.RAFT.core.raft import RAFT

    torch.manual_seed(seed)
    model = RAFT(argparse.Namespace(small=False, mixed_precision=False, alternate_corr=False))
    state = model.state_dict()
    if zero_head:  # RAFT's flow updates all come from this layer: zero it and every flow is exactly 0
        state["update_block.flow_head.conv2.weight"].zero_()
        state["update_block.flow_head.conv2.bias"].zero_()
    return model, state


def _write_raft(cache, seed=0, zero_head=False):
    """raft-things.pth as VBench reads it: a torch.save of nn.DataParallel's state dict ('module.' keys)."""
    import torch  # heavy: as above

    _, state = _raft_state(seed, zero_head)
    path = static_filter_weights(cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    return path


# --------------------------------------------------------------------------- constants and decision

def test_constants_are_those_of_vbench_static_filter_script():
    # Vchitect/VBench static_filter.py as of commit 45e79ec14e69a2187202c675d2dbce1a71843d53 (the file
    # last changed in 1f9b9a9c430858f43ce45bfa31daaa4da07ff7fe): get_score cut_index = int(h*w*0.02);
    # set_params thres = 3.0*(scale/256.0), count_num = round(2*(count/16.0)); check_static's
    # first/last limit thres*count_num*2; infer iters=20; static_count < 5; prompts/README.md: 25 videos.
    assert sf.TOP_FRACTION == 0.02 and sf.THRESHOLD_PX_PER_256 == 3.0 and sf.PAIRS_ALLOWED_PER_16_FRAMES == 2
    assert sf.FIRST_LAST_FACTOR == 2 and sf.RAFT_ITERATIONS == 20
    assert sf.STATIC_PER_PROMPT == 5 and sf.SAMPLED_PER_PROMPT == 25
    assert str(static_filter_weights("/c")).endswith("raft_model/models/raft-things.pth")


def test_thresholds_scale_with_frame_size_and_length():
    assert sf.thresholds(320, 512, 16) == (3.75, 2)
    assert sf.thresholds(SIDE, SIDE, FRAMES) == (1.5, 1)
    # Python's round, as the script: halves go to even
    assert sf.thresholds(256, 256, 4)[1] == 0 and sf.thresholds(256, 256, 20)[1] == 2
    assert sf.thresholds(256, 256, 12)[1] == 2
    assert sf.pairs(4) == [(0, 1), (1, 2), (2, 3), (0, 3), (3, 0)]


def test_flow_measure_is_the_mean_of_the_largest_two_percent():
    flow = np.zeros((2, 100, 100))
    assert sf.flow_measure(flow) == 0.0
    flow[0], flow[1] = 3.0, 4.0
    assert sf.flow_measure(flow) == pytest.approx(5.0)
    flow[:] = 0.0
    flow[0].flat[:200] = 10.0          # exactly 2% of the pixels move by 10
    assert sf.flow_measure(flow) == pytest.approx(10.0)
    flow[0].flat[100:200] = 0.0        # 1%: half of the top 2% is still
    assert sf.flow_measure(flow) == pytest.approx(5.0)
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        sf.flow_measure(np.zeros((100, 100, 2)))


def test_decision_on_hand_made_flow_fields():
    threshold, allowed = sf.thresholds(SIDE, SIDE, 16)           # 1.5 px, 2 pairs
    assert sf.is_static([0.0] * 17, threshold, allowed)
    # a pan of 4 px a frame: every consecutive pair and the (first, last) pair move
    pan = [sf.flow_measure(np.stack([np.full((SIDE, SIDE), PAN_PX * d), np.zeros((SIDE, SIDE))]))
           for d in [1] * 15 + [15, -15]]
    assert not sf.is_static(pan, threshold, allowed)
    # up to `allowed` consecutive pairs may move; one more may not
    assert sf.is_static([2.0, 2.0] + [0.0] * 13 + [0.0, 0.0], threshold, allowed)
    assert not sf.is_static([2.0, 2.0, 2.0] + [0.0] * 12 + [0.0, 0.0], threshold, allowed)
    # first/last may drift up to threshold * allowed * 2 = 6 px
    assert sf.is_static([0.0] * 15 + [6.0, 6.0], threshold, allowed)
    assert not sf.is_static([0.0] * 15 + [0.0, 6.01], threshold, allowed)
    # with no pair allowed (4 frames), any first/last drift drops the video
    assert not sf.is_static([0.0] * 3 + [0.01, 0.0], threshold, 0)


def test_frames_too_small_for_raft_are_refused_before_any_flow(tmp_path):
    assert not sf.raft_supports(64, 64) and not sf.raft_supports(120, 256)
    assert sf.raft_supports(121, 121) and sf.raft_supports(320, 512)
    vb.export_for_vbench([("a still cup", 0, _still(side=64))], tmp_path / "v", mode="custom_input")

    def never(a, b):
        raise AssertionError("flow computed on frames RAFT cannot handle")

    with pytest.raises(sf.FramesTooSmall, match="64x64 are too small"):
        sf.video_decision(tmp_path / "v" / "a still cup-0.mp4", never)
    with pytest.raises(sf.FramesTooSmall):
        sf.select_for_flickering(tmp_path / "v", {"a still cup-0.mp4": "a still cup"}, tmp_path / "t",
                                 tmp_path / "absent.pth", flow=never)


# --------------------------------------------------------------------------- selection, exact flow

def test_selection_keeps_still_videos_and_drops_panned_ones(tmp_path):
    # prompt "a desk": a pan first, then six still videos; "a road": only a pan
    items = [("a desk", 0, _pan(0))] + [("a desk", i, _still(i)) for i in range(1, 7)] + [("a road", 0, _pan(9))]
    names = vb.export_for_vbench(items, tmp_path / "videos", mode="custom_input")
    assert _exact_flow(_pan(0)[0], _pan(0)[1])[0, 0, 0] == PAN_PX          # the stand-in measures the pan
    sel = sf.select_for_flickering(tmp_path / "videos", names, tmp_path / "static", tmp_path / "unused.pth",
                                   flow=_exact_flow)
    videos = sel.record["videos"]
    assert videos["a desk-0.mp4"]["static"] is False and videos["a desk-0.mp4"]["kept"] is False
    assert videos["a desk-0.mp4"]["flow_max"] == pytest.approx(PAN_PX, abs=1e-6)
    assert videos["a desk-0.mp4"]["pairs_above"] == FRAMES - 1
    for i in range(1, 6):
        v = videos[f"a desk-{i}.mp4"]
        assert v["kept"] and v["flow_max"] == 0.0 and v["flow_first_last"] == 0.0 and v["threshold"] == 1.5
    # the quota of 5 is reached: the seventh video is not examined, as in VBench's script
    assert videos["a desk-6.mp4"] == {"prompt": "a desk", "static": None, "kept": False}
    assert sel.record["kept"] == {"a desk": [f"a desk-{i}.mp4" for i in range(1, 6)], "a road": []}
    assert sorted(p.name for p in sel.folder.iterdir()) == [f"a desk-{i}.mp4" for i in range(1, 6)]
    assert all((sel.folder / n).resolve() == (tmp_path / "videos" / n).resolve() for n in sel.originals)
    assert len(sel.notes) == 1 and "1 of 2 prompts have fewer than 5 static" in sel.notes[0]
    assert "'a road': 0 of 1" in sel.notes[0] and "1 have none" in sel.notes[0]

    # standard naming: the kept videos are renumbered from 0, as the script's copies are
    std = sf.select_for_flickering(tmp_path / "videos", names, tmp_path / "static_std", tmp_path / "unused.pth",
                                   renumber=True, flow=_exact_flow)
    assert std.originals == {f"a desk-{j}.mp4": f"a desk-{j + 1}.mp4" for j in range(5)}


def test_a_non_finite_flow_is_an_error_not_a_static_video(tmp_path):
    vb.export_for_vbench([("a lamp", 0, _still())], tmp_path / "v", mode="custom_input")
    with pytest.raises(UnusableFile, match="non-finite flow"):
        sf.video_decision(tmp_path / "v" / "a lamp-0.mp4", lambda a, b: np.full((2, SIDE, SIDE), np.nan))


# --------------------------------------------------------------------------- the real RAFT forward

def test_raft_forward_with_weights_in_vbench_format(tmp_path, one_thread):
    import torch  # heavy: RAFT
    from vbench.third_party.RAFT.core.utils_core.utils import InputPadder

    cache = tmp_path / "cache"
    weights = _write_raft(cache, seed=3)
    flow = sf.RaftFlow(weights, "cpu")
    frame = _texture(1)
    got = flow(frame, frame)
    assert got.shape == (2, SIDE, SIDE)
    # independent of the module: the same network and padding, measured with numpy here
    model, _ = _raft_state(3)
    x = torch.from_numpy(frame).permute(2, 0, 1).float()[None]
    a, b = InputPadder(x.shape).pad(x, x)
    with torch.no_grad():
        _, up = model.eval()(a, b, iters=20, test_mode=True)
    np.testing.assert_allclose(got, up[0].numpy(), rtol=1e-5, atol=1e-5)
    magnitude = np.sort(np.hypot(*up[0].numpy()).ravel())[::-1]
    measure = sf.flow_measure(got)
    assert measure == pytest.approx(magnitude[: int(SIDE * SIDE * 0.02)].mean(), rel=1e-5)
    # random weights see motion in identical frames: why the decision is tested with exact flow above
    assert measure > sf.thresholds(SIDE, SIDE, FRAMES)[0]
    # every pair of a still clip is the same input, so every measure is the same
    vb.export_for_vbench([("a vase", 0, _still(1, frames=4))], tmp_path / "v", mode="custom_input")
    decision = sf.video_decision(tmp_path / "v" / "a vase-0.mp4", flow)
    assert decision["flow_max"] == pytest.approx(decision["flow_first_last"], rel=1e-5)
    assert decision["static"] is False
    # below 128 pixels a side RAFT's coarsest correlation level is one pixel and its flow NaN
    small = _texture(1, 64)
    assert np.isnan(flow(small, small)).all()


def test_zero_flow_weights_keep_a_still_clip_through_raft(tmp_path, one_thread):
    weights = _write_raft(tmp_path / "cache", seed=4, zero_head=True)
    vb.export_for_vbench([("a chair", 0, _still(2, frames=4))], tmp_path / "v", mode="custom_input")
    sel = sf.select_for_flickering(tmp_path / "v", {"a chair-0.mp4": "a chair"}, tmp_path / "s", weights)
    record = sel.record["videos"]["a chair-0.mp4"]
    assert record["flow_max"] == 0.0 and record["flow_first_last"] == 0.0 and record["kept"] is True
    assert sel.record["weights"] == str(weights) and sel.originals == {"a chair-0.mp4": "a chair-0.mp4"}


def test_an_unreadable_raft_file_is_a_user_error(tmp_path):
    path = static_filter_weights(tmp_path / "cache")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UnusableFile, match="cannot load RAFT weights"):
        sf.RaftFlow(path)


# --------------------------------------------------------------------------- inside evaluate

def test_evaluate_scores_temporal_flickering_on_static_videos_only(tmp_path, monkeypatch, one_thread):
    # 4 frames: 5 RAFT pairs a video (no consecutive pair may move, nor first/last)
    items = [("a still cup", 0, _still(0, frames=4)), ("a still cup", 1, _still(1, frames=4)),
             ("a panning street", 0, _pan(2, frames=4))]
    names = vb.export_for_vbench(items, tmp_path / "videos", mode="custom_input")
    kw = dict(mode="custom_input", device="cpu", prompts=names)

    # no RAFT file: every video is scored and the dimension is marked non-standard (the § of Table 2)
    plain = vb.evaluate(tmp_path / "videos", "plain", ["temporal_flickering"], out_dir=tmp_path / "o1",
                        cache_dir=tmp_path / "empty", **kw)
    assert "temporal_flickering" in plain["non_standard"] and plain["static_filter"]["applied"] is False
    assert any("RAFT weights" in n and "not in the VBench cache" in n for n in plain["notes"])
    assert set(plain["per_video"]["temporal_flickering"]) == set(names)

    # RAFT file present (zero-flow weights: every video is static): filtered, not non-standard
    cache = tmp_path / "cache"
    _write_raft(cache, seed=5, zero_head=True)
    res = vb.evaluate(tmp_path / "videos", "raft", ["temporal_flickering"], out_dir=tmp_path / "o2",
                      cache_dir=cache, **kw)
    assert res["failed"] == {} and res["skipped"] == {} and res["non_standard"] == {}
    assert not any("not applied" in n or "§" in n for n in res["notes"])
    record = res["static_filter"]
    assert record["applied"] and all(v["kept"] and v["flow_max"] == 0.0 for v in record["videos"].values())
    assert set(res["per_video"]["temporal_flickering"]) == set(names)

    # exact flow in RAFT's place: the pan is dropped and only the still videos are scored
    monkeypatch.setattr(sf, "RaftFlow", lambda weights, device: _exact_flow)
    res = vb.evaluate(tmp_path / "videos", "exact", ["temporal_flickering"], out_dir=tmp_path / "o3",
                      cache_dir=cache, **kw)
    assert res["non_standard"] == {}
    assert res["static_filter"]["kept"] == {"a still cup": ["a still cup-0.mp4", "a still cup-1.mp4"],
                                            "a panning street": []}
    assert res["static_filter"]["videos"]["a panning street-0.mp4"]["kept"] is False
    per = res["per_video"]["temporal_flickering"]
    assert set(per) == {"a still cup-0.mp4", "a still cup-1.mp4"} and res["n_videos"]["temporal_flickering"] == 2
    assert res["scores"]["temporal_flickering"] == pytest.approx(1.0, abs=1e-6)
    assert any("fewer than 5 static" in n and "1 have none" in n for n in res["notes"])


def test_evaluate_keeps_the_non_standard_mark_when_frames_are_too_small(tmp_path):
    names = vb.export_for_vbench([("a still cup", 0, _still(0, side=64))], tmp_path / "videos", mode="custom_input")
    cache = tmp_path / "cache"
    _write_raft(cache, zero_head=True)
    res = vb.evaluate(tmp_path / "videos", "small", ["temporal_flickering"], mode="custom_input",
                      out_dir=tmp_path / "o", device="cpu", prompts=names, cache_dir=cache)
    assert "temporal_flickering" in res["non_standard"] and res["static_filter"]["applied"] is False
    assert any("too small for RAFT" in n for n in res["notes"])


def test_evaluate_reports_a_broken_raft_file_as_failed(tmp_path):
    names = vb.export_for_vbench([("a still cup", 0, _still(0))], tmp_path / "videos", mode="custom_input")
    path = static_filter_weights(tmp_path / "cache")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"junk")
    res = vb.evaluate(tmp_path / "videos", "broken", ["temporal_flickering"], mode="custom_input",
                      out_dir=tmp_path / "o", device="cpu", prompts=names, cache_dir=tmp_path / "cache")
    assert "cannot load RAFT weights" in res["failed"]["temporal_flickering"]
    assert "temporal_flickering" not in res["scores"]


def test_standard_mode_renumbers_the_static_videos_and_reports_them_by_their_own_names(tmp_path, monkeypatch):
    tf = [p["prompt"] for p in vb.standard_prompts() if "temporal_flickering" in p["dimensions"]][:2]
    moving = {(tf[0], 0), (tf[1], 0), (tf[1], 1)}
    # six videos a prompt: a small pool (VBench samples 25 for this dimension, as experiment=vbench does)
    vb.export_for_vbench([(p, i, _pan(i, frames=4) if (p, i) in moving else _still(i, frames=4))
                          for p in tf for i in range(6)], tmp_path / "videos", mode="custom_input")
    static_filter_weights(tmp_path / "cache").parent.mkdir(parents=True)
    static_filter_weights(tmp_path / "cache").write_bytes(b"unread: exact flow stands in for RAFT")
    monkeypatch.setattr(sf, "RaftFlow", lambda weights, device: _exact_flow)
    res = vb.evaluate(tmp_path / "videos", "std", ["temporal_flickering"], out_dir=tmp_path / "o", device="cpu",
                      cache_dir=tmp_path / "cache", require_complete=False)
    assert res["failed"] == {} and res["non_standard"] == {}
    assert res["static_filter"]["kept"] == {tf[0]: [f"{tf[0]}-{i}.mp4" for i in range(1, 6)],
                                            tf[1]: [f"{tf[1]}-{i}.mp4" for i in range(2, 6)]}
    # VBench read them as {prompt}-0..4 in the static folder; the result names the files given
    assert set(res["per_video"]["temporal_flickering"]) == {f"{tf[0]}-{i}.mp4" for i in range(1, 6)} | {
        f"{tf[1]}-{i}.mp4" for i in range(2, 6)}
    assert sorted(p.name for p in (tmp_path / "o" / "std_static_videos").iterdir()) == sorted(
        [f"{tf[0]}-{j}.mp4" for j in range(5)] + [f"{tf[1]}-{j}.mp4" for j in range(4)])
    assert res["n_videos"]["temporal_flickering"] == 9
    assert res["scores"]["temporal_flickering"] == pytest.approx(1.0, abs=1e-6)
    assert any("1 of 2 prompts have fewer than 5 static" in n for n in res["notes"])
