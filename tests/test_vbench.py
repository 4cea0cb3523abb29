"""VBench wrapper: prompts, export naming, offline runs of the real vbench package, aggregation."""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from metrics import vbench as vb

F, H, W = 16, 64, 64


def _static_clip(seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    frame = np.stack([xx * 4, yy * 4, (xx + yy) * 2], axis=-1) + rng.integers(0, 30, (H, W, 3))
    return np.repeat(np.clip(frame, 0, 255).astype(np.uint8)[None], F, axis=0)


def _moving_gradient():
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([np.stack([((xx + 3 * t) % W) * 4, ((yy + t) % H) * 4, np.full_like(xx, 90)], axis=-1)
                     for t in range(F)]).astype(np.uint8)


def _flicker(seed=1):
    rng = np.random.default_rng(seed)
    base = _static_clip(seed).astype(np.int16)
    return np.clip(base + rng.integers(-60, 60, (F, 1, 1, 1)), 0, 255).astype(np.uint8)


def _decode(path):
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return np.stack([np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader])


# --------------------------------------------------------------------------- prompts

def test_standard_prompt_suite_has_946_prompts():
    prompts = vb.standard_prompts()
    assert len(prompts) == 946
    assert len(vb.standard_prompts(distinct=True)) == 944  # two prompts are listed twice
    assert prompts[0]["prompt"] == "In a still frame, a stop sign"
    assert prompts[0]["dimensions"] == ["temporal_flickering"]
    counts = {}
    for p in prompts:
        assert p["dimensions"] and set(p["dimensions"]) <= set(vb.ALL_DIMENSIONS)
        for d in p["dimensions"]:
            counts[d] = counts.get(d, 0) + 1
    assert set(counts) == set(vb.ALL_DIMENSIONS)
    assert counts["temporal_flickering"] == 75 and counts["human_action"] == 100
    assert any(p["auxiliary_info"] for p in prompts if "multiple_objects" in p["dimensions"])


# --------------------------------------------------------------------------- aggregate

def _at(dim, fraction):
    """Raw score whose normalised value is ``fraction`` of the dimension's range."""
    lo, hi = vb.NORMALIZE[dim]
    return lo + fraction * (hi - lo)


def test_vbench_prompt_set_keeps_the_prompts_the_dimensions_read():
    from bench.plan.prompts import load_prompt_set, vbench_prompt_set

    every = vbench_prompt_set()
    assert len(every.classes) == 944 and every.classes[0] == "vbench-000"
    tf = load_prompt_set("vbench_standard", vbench_dimensions=["temporal_flickering"])
    wanted = [p["prompt"] for p in vb.standard_prompts(distinct=True) if "temporal_flickering" in p["dimensions"]]
    assert tf.captions == wanted and len(tf.captions) == 75
    # ids are those of the whole suite, so a clip keeps its key whichever dimensions are asked for
    assert all(every.captions[every.classes.index(i)] == c for i, c in zip(tf.classes, tf.captions))
    assert tf.sha256 == every.sha256 and len(tf.sha256) == 64
    with pytest.raises(ValueError, match="Unknown VBench dimension.*temporal_flicker\\b"):
        vbench_prompt_set(["temporal_flicker"])


@pytest.mark.parametrize("overrides, message", [
    (["metrics.vbench.options.mode=vbench_standard"], "use experiment=vbench"),
    (["experiment=vbench", "protocol.videos_per_prompt=6"], "reads 5 videos per prompt"),
    (["experiment=vbench", "+metric@metrics.fvd=fvd"], "FVD compares with real UCF-101 clips"),
])
def test_settings_that_make_vbench_meaningless_are_refused(overrides, message):
    from bench.run.pipeline import metric_settings_problems
    from tests.conftest import compose

    problems = metric_settings_problems(compose(overrides))
    assert len(problems) == 1 and message in problems[0]
    assert metric_settings_problems(compose(["experiment=vbench"])) == []


@pytest.mark.parametrize("override, new", [
    ("vbench.enabled=true", "metrics.vbench.enabled"),
    ("vbench.dimensions=[temporal_flickering]", "metrics.vbench.options.dimensions=[temporal_flickering]"),
    ("+vbench.nfe=2", "metrics.vbench.options.nfe=2"),
    ("vbench.mode=custom_input", "metrics.vbench.options.mode=custom_input"),
])
def test_the_former_vbench_settings_name_their_new_key(override, new):
    from bench.plan.config import CONFIG_DIR
    from bench.plan.overrides import check_overrides

    problem = check_overrides(["experiment=smoke", override], str(CONFIG_DIR))
    assert problem is not None and len(problem.splitlines()) == 1
    assert problem.startswith(f"{override.lstrip('+').split('=')[0]} moved to metrics.vbench") and new in problem
    assert "'+metric@metrics.vbench=vbench'" in problem


def test_the_tools_compose_refuses_a_former_vbench_setting():
    """bench.plan.config.compose (the tools' and benchmarks' way in) names the new key too."""
    from bench.plan.config import compose

    with pytest.raises(ValueError, match="^vbench.nfe moved to metrics.vbench.options.nfe; .*options.nfe=2 "):
        compose(["++vbench.nfe=2"])
    assert compose(["metrics.vbench.options.nfe=2"]).metrics.vbench.options.nfe == 2


def test_an_experiment_file_with_a_vbench_section_names_the_new_layout(tmp_path):
    """A config written for the former top-level section stops before Hydra, on one line."""
    import sys

    from bench.plan.config import CONFIG_DIR
    from bench.plan.overrides import check_overrides
    from tests.conftest import REPO

    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\nexperiment: mine\nvbench:\n  enabled: true\n  dimensions: [temporal_flickering]\n")
    args = ["experiment=mine", f"hydra.searchpath=[file://{tmp_path}]"]
    problem = check_overrides(args, str(CONFIG_DIR))
    assert problem == (f"{tmp_path / 'experiment' / 'mine.yaml'} has a top-level 'vbench:' section, which moved to "
                       f"metrics.vbench: list '- /metric@metrics.vbench: vbench' in its defaults and its dimensions "
                       f"under metrics.vbench.options (metrics: vbench: options: ...).")
    run = subprocess.run([sys.executable, "run_bench.py", *args, f"run_dir={tmp_path / 'run'}"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and run.stderr.strip() == f"lcmbench: error: {problem}"
    assert not (tmp_path / "run").exists()
    assert check_overrides(["experiment=smoke"], str(CONFIG_DIR)) is None


def test_vbench_is_configured_as_a_metric():
    from tests.conftest import compose

    cfg = compose([])
    assert "vbench" not in cfg and cfg.metrics.vbench.enabled
    assert dict(cfg.metrics.vbench.options) == {"dimensions": ["temporal_flickering"], "nfe": 4,
                                                "mode": "custom_input", "allow_missing": True, "cache_dir": None}
    assert "vbench" not in compose(["experiment=table1"]).metrics
    vbench = compose(["experiment=vbench"]).metrics.vbench.options
    assert vbench.mode == "vbench_standard" and len(vbench.dimensions) == 16


# --------------------------------------------------------------------------- the set metric

def _fake_evaluate(calls, failed=None):
    def evaluate(folder, name, dimensions, **kwargs):
        calls.append({"folder": folder, "name": name, "dimensions": list(dimensions), **kwargs})
        return {"scores": {"temporal_flickering": 0.9}, "skipped": {"subject_consistency": "no weights"},
                "failed": dict(failed or {}), "missing_videos": {}, "non_standard": {"temporal_flickering": "x"}}
    return evaluate


def test_set_metric_exports_evaluates_and_aggregates_each_method(tmp_path):
    from metrics.vbench_metric import VBenchSetMetric

    calls = []
    metric = VBenchSetMetric(_fake_evaluate(calls), ["temporal_flickering", "subject_consistency"],
                             mode="custom_input", device="cpu", cache_dir=str(tmp_path / "cache"))
    clip = _static_clip()
    out = metric.score_videos({"a": [("a still object", 0, clip), ("a still object", 1, clip)], "b": []}, 4,
                              tmp_path / "vbench")
    assert list(out) == ["a"]   # no stored frames for b: skipped
    exported = sorted(p.name for p in (tmp_path / "vbench" / "a" / "videos").iterdir())
    assert exported == ["a still object-0.mp4", "a still object-1.mp4"]
    (call,) = calls
    assert call["name"] == "a" and call["out_dir"] == tmp_path / "vbench" / "a" / "scores"
    assert call["mode"] == "custom_input" and call["device"] == "cpu" and call["cache_dir"] == str(tmp_path / "cache")
    assert set(call["prompts"]) == set(exported) and call["require_complete"] is False
    entry = out["a"]
    expected = vb.aggregate({"temporal_flickering": 0.9}, allow_missing=True)
    assert entry["nfe"] == 4 and entry["n_videos"] == 2 and entry["mode"] == "custom_input"
    assert entry["quality"] == pytest.approx(100 * expected["quality"]) and entry["partial"] is True
    assert entry["total"] is None and entry["semantic"] is None   # no semantic dimension ran
    assert entry["skipped"] == {"subject_consistency": "no weights"} and entry["scores"] == {"temporal_flickering": 0.9}
    assert metric.describe() == {"name": "vbench", "version": "0.1.5", "id": "vbench-custom_input",
                                 "dimensions": ["temporal_flickering", "subject_consistency"], "nfe": 4,
                                 "export": "lossless H.264 (crf 0), 8 fps"}


def test_set_metric_refuses_to_score_when_a_dimension_raised(tmp_path):
    from metrics.base import MetricFailed
    from metrics.vbench_metric import VBenchSetMetric

    metric = VBenchSetMetric(_fake_evaluate([], failed={"motion_smoothness": "VBench's motion_smoothness raised"}),
                             ["temporal_flickering", "motion_smoothness"])
    with pytest.raises(MetricFailed, match="VBench failed for method 'a' \\(NFE 2\\): motion_smoothness: .*raised.*"
                                           "metrics.vbench.options.dimensions"):
        metric.score_videos({"a": [("p", 0, _static_clip())]}, 2, tmp_path)


def test_build_checks_the_dimensions():
    import metrics

    built = metrics.build("vbench", dimensions=["temporal_flickering"], nfe=2, device="cpu")
    assert built.name == "vbench" and built.dimensions == ["temporal_flickering"] and built.nfe == 2
    with pytest.raises(ValueError, match="temporal_flicker'.*did you mean 'temporal_flickering'"):
        metrics.build("vbench", dimensions=["temporal_flicker"])


def test_aggregate_all_at_max_is_one():
    out = vb.aggregate({d: vb.NORMALIZE[d][1] for d in vb.ALL_DIMENSIONS})
    assert out["total"] == pytest.approx(1.0, abs=1e-12)
    assert out["quality"] == pytest.approx(1.0, abs=1e-12)
    assert out["semantic"] == pytest.approx(1.0, abs=1e-12)
    assert out["partial"] is False and out["missing"] == []
    low = vb.aggregate({d: vb.NORMALIZE[d][0] for d in vb.ALL_DIMENSIONS})
    assert low["total"] == pytest.approx(0.0, abs=1e-12)


def test_aggregate_hand_computed_mixed_case():
    raw = {
        "subject_consistency": 0.1462 + 0.5 * (1.0 - 0.1462),  # n = 0.5
        "background_consistency": 1.0,                         # 1
        "temporal_flickering": 0.6293,                         # 0
        "motion_smoothness": 0.9975,                           # 1
        "aesthetic_quality": 0.6,                              # 0.6
        "imaging_quality": 0.7,                                # 0.7
        "dynamic_degree": 0.4,                                 # 0.4 * weight 0.5 = 0.2
        "object_class": 0.9, "multiple_objects": 0.5, "human_action": 0.8, "color": 0.7,
        "spatial_relationship": 0.6,
        "scene": 0.4111,                                       # 0.4111 / 0.8222 = 0.5
        "appearance_style": 0.2855,                            # max: 1
        "temporal_style": 0.182,                               # 0.182 / 0.364 = 0.5
        "overall_consistency": 0.273,                          # 0.75
    }
    quality = (0.5 + 1 + 0 + 1 + 0.6 + 0.7 + 0.2) / 6.5
    semantic = (0.9 + 0.5 + 0.8 + 0.7 + 0.6 + 0.5 + 1 + 0.5 + 0.75) / 9
    out = vb.aggregate(raw)
    assert out["quality"] == pytest.approx(quality, abs=1e-12)
    assert out["semantic"] == pytest.approx(semantic, abs=1e-12)
    assert out["total"] == pytest.approx((4 * quality + semantic) / 5, abs=1e-12)
    assert out["total"] == pytest.approx(0.6311965811965812, abs=1e-12)
    assert out["normalized"]["dynamic_degree"] == pytest.approx(0.2)
    # VBench's spaced names (cal_final_score.py keys) mean the same dimensions
    spaced = vb.aggregate({k.replace("_", " "): v for k, v in raw.items()})
    assert spaced["total"] == pytest.approx(out["total"], abs=1e-15)


def test_aggregate_refuses_missing_dimensions():
    scores = {d: 0.9 for d in vb.ALL_DIMENSIONS if d not in ("scene", "dynamic_degree")}
    with pytest.raises(ValueError, match="missing VBench dimensions: dynamic_degree, scene.*allow_missing=True"):
        vb.aggregate(scores)


def test_aggregate_partial_uses_present_weights():
    raw = {"temporal_flickering": _at("temporal_flickering", 0.8), "dynamic_degree": 0.6}
    out = vb.aggregate(raw, allow_missing=True)
    assert out["partial"] is True
    assert set(out["missing"]) == set(vb.ALL_DIMENSIONS) - set(raw)
    assert out["present"] == ["temporal_flickering", "dynamic_degree"]
    assert out["quality"] == pytest.approx((0.8 + 0.5 * 0.6) / 1.5, abs=1e-12)
    assert out["semantic"] is None and out["total"] is None
    both = vb.aggregate({"subject_consistency": 1.0, "color": 0.25}, allow_missing=True)
    assert both["total"] == pytest.approx((4 * 1.0 + 0.25) / 5, abs=1e-12)
    full = vb.aggregate({d: vb.NORMALIZE[d][1] for d in vb.ALL_DIMENSIONS}, allow_missing=True)
    assert full["partial"] is False


def test_aggregate_rejects_bad_values():
    with pytest.raises(ValueError, match="divide percentages by 100"):
        vb.aggregate({"temporal_flickering": 97.5}, allow_missing=True)
    with pytest.raises(ValueError, match="did you mean 'temporal_flickering'"):
        vb.aggregate({"temporal_flicker": 0.9}, allow_missing=True)
    with pytest.raises(ValueError, match="finite"):
        vb.aggregate({"color": float("nan")}, allow_missing=True)


# --------------------------------------------------------------------------- export

def test_export_uses_vbench_names_and_handles_unsafe_prompts(tmp_path):
    from vbench.utils import get_prompt_from_filename

    long_prompt = "a very long caption " * 15  # 300 bytes: too long for a file name
    items = [("a man playing violin-2 times", 0, _static_clip()),
             ("riding a horse / at dusk", 3, _static_clip(1)),
             (long_prompt, 1, _static_clip(2))]
    names = vb.export_for_vbench(items, tmp_path, mode="custom_input")
    assert list(names.values()) == [p for p, _, _ in items]
    assert "a man playing violin-2 times-0.mp4" in names
    assert set(os.listdir(tmp_path)) == set(names)
    for name, prompt in names.items():
        assert len(name.encode()) <= 255 and "/" not in name
        if "/" not in prompt and len(prompt) < 200:
            assert get_prompt_from_filename(name) == prompt  # VBench reads the prompt back from the name
    frames = _decode(tmp_path / "a man playing violin-2 times-0.mp4")
    assert frames.shape == (F, H, W, 3)
    # a copied mp4 keeps its bytes
    again = vb.export_for_vbench([("copy of it", 4, tmp_path / "a man playing violin-2 times-0.mp4")],
                                 tmp_path / "copy", mode="custom_input")
    assert (tmp_path / "copy" / "copy of it-4.mp4").read_bytes() == \
        (tmp_path / "a man playing violin-2 times-0.mp4").read_bytes()
    assert again == {"copy of it-4.mp4": "copy of it"}


def test_export_standard_mode_checks_prompts_and_indices(tmp_path):
    prompt = vb.standard_prompts()[0]["prompt"]
    names = vb.export_for_vbench([(prompt, i, _static_clip()) for i in range(5)], tmp_path)
    assert sorted(names) == [f"{prompt}-{i}.mp4" for i in range(5)]
    with pytest.raises(ValueError, match="indices 0..4"):
        vb.export_for_vbench([(prompt, 25, _static_clip())], tmp_path / "x")   # a temporal_flickering prompt: 0..24
    with pytest.raises(ValueError, match="not a VBench standard prompt.*custom_input"):
        vb.export_for_vbench([("In a still frame, a stop sigh", 0, _static_clip())], tmp_path / "x")
    with pytest.raises(ValueError, match="duplicates an earlier item"):
        vb.export_for_vbench([(prompt, 0, _static_clip()), (prompt, 0, _static_clip())], tmp_path / "y")
    with pytest.raises(ValueError, match="even frame sizes"):
        vb.export_for_vbench([(prompt, 0, _static_clip()[:, :63])], tmp_path / "z")
    with pytest.raises(ValueError, match="uint8"):
        vb.export_for_vbench([(prompt, 0, _static_clip().astype(np.float32))], tmp_path / "z")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        vb.export_for_vbench([(prompt, 0, str(tmp_path / "missing.mp4"))], tmp_path / "z")


# --------------------------------------------------------------------------- evaluate (real vbench)

def test_temporal_flickering_runs_through_vbench(tmp_path):
    static, moving, flicker = _static_clip(), _moving_gradient(), _flicker()
    names = vb.export_for_vbench([("a still object", 0, static), ("a sliding gradient", 0, moving),
                                  ("a flickering lamp / bulb", 0, flicker)], tmp_path / "videos",
                                 mode="custom_input")
    # mp4 (lossless H.264) of a constant frame decodes to identical frames
    decoded = _decode(tmp_path / "videos" / "a still object-0.mp4")
    assert np.array_equal(decoded, np.repeat(decoded[:1], F, axis=0))

    res = vb.evaluate(tmp_path / "videos", "smoke", ["temporal_flickering"], mode="custom_input",
                      out_dir=tmp_path / "out", device="cpu", prompts=names, cache_dir=tmp_path / "cache")
    assert res["skipped"] == {} and res["failed"] == {}
    per = res["per_video"]["temporal_flickering"]
    assert set(per) == set(names) and res["n_videos"]["temporal_flickering"] == 3
    assert per["a still object-0.mp4"] == pytest.approx(1.0, abs=1e-6)
    flicker_name = next(n for n, p in names.items() if p.startswith("a flickering"))
    assert per[flicker_name] < per["a sliding gradient-0.mp4"] < 1.0 - 1e-3
    assert res["scores"]["temporal_flickering"] == pytest.approx(np.mean(list(per.values())), abs=1e-12)
    # independent check: (255 - mean |frame[t+1] - frame[t]|) / 255 on the decoded frames
    for name, value in per.items():
        frames = _decode(tmp_path / "videos" / name).astype(np.float64)
        expected = (255.0 - np.abs(np.diff(frames, axis=0)).mean()) / 255.0
        assert value == pytest.approx(expected, abs=2e-3)
    saved = json.loads(open(res["results_files"]["temporal_flickering"]).read())
    assert saved["temporal_flickering"][0] == pytest.approx(res["scores"]["temporal_flickering"])
    assert res["vbench_version"] == "0.1.5" and res["mode"] == "custom_input"
    # the real prompt, not the sanitised file name, went to VBench
    info = json.loads((tmp_path / "out" / "smoke_temporal_flickering_full_info.json").read_text())
    assert "a flickering lamp / bulb" in {e["prompt_en"] for e in info}


def test_standard_mode_finds_videos_by_prompt_and_flags_missing_ones(tmp_path):
    tf = [p["prompt"] for p in vb.standard_prompts() if "temporal_flickering" in p["dimensions"]]
    vb.export_for_vbench([(p, i, _static_clip(i)) for p in tf[:2] for i in range(5)], tmp_path / "videos")
    with pytest.raises(ValueError, match="365 of 375 videos missing.*require_complete=False"):
        vb.evaluate(tmp_path / "videos", "std", ["temporal_flickering"], out_dir=tmp_path / "out",
                    device="cpu", cache_dir=tmp_path / "cache")
    res = vb.evaluate(tmp_path / "videos", "std", ["temporal_flickering"], out_dir=tmp_path / "out",
                      device="cpu", cache_dir=tmp_path / "cache", require_complete=False)
    assert res["missing_videos"] == {"temporal_flickering": 365}
    assert res["n_videos"]["temporal_flickering"] == 10
    assert res["scores"]["temporal_flickering"] == pytest.approx(1.0, abs=1e-6)
    assert any("static filter" in n for n in res["notes"])
    (tmp_path / "videos" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="only videos"):
        vb.evaluate(tmp_path / "videos", "std", ["temporal_flickering"], out_dir=tmp_path / "out",
                    device="cpu", cache_dir=tmp_path / "cache", require_complete=False)


def test_missing_weights_are_skipped_with_reasons(tmp_path, monkeypatch):
    real_run = subprocess.run

    def no_network(cmd, *a, **k):
        if any(str(c) in ("wget", "git", "curl", "unzip") for c in (cmd if isinstance(cmd, list) else [cmd])):
            raise AssertionError(f"download attempted: {cmd}")
        return real_run(cmd, *a, **k)

    monkeypatch.setattr(subprocess, "run", no_network)
    cache = tmp_path / "empty_cache"
    status = vb.available_dimensions(cache)
    assert status["available"] == ["temporal_flickering"]
    assert set(status["unavailable"]) == set(vb.ALL_DIMENSIONS) - {"temporal_flickering"}
    ms = status["unavailable"]["motion_smoothness"]
    assert str(cache / "amt_model" / "amt-s.pth") in ms and "huggingface.co/lalala125/AMT" in ms
    assert "raft-things.pth" in status["unavailable"]["dynamic_degree"]
    assert "ViClip-InternVid-10M-FLT.pth" in status["unavailable"]["overall_consistency"]

    vb.export_for_vbench([("a still object", 0, _static_clip())], tmp_path / "videos", mode="custom_input")
    dims = [d for d in vb.ALL_DIMENSIONS if d not in vb.CUSTOM_INPUT_UNSUPPORTED]
    res = vb.evaluate(tmp_path / "videos", "skip", dims, mode="custom_input", out_dir=tmp_path / "out",
                      device="cpu", cache_dir=cache)
    assert list(res["scores"]) == ["temporal_flickering"]
    assert set(res["skipped"]) == set(dims) - {"temporal_flickering"}
    for dim, reason in res["skipped"].items():
        assert "missing" in reason or "not installed" in reason, (dim, reason)
    assert "dino_vitbase16_pretrain.pth" in res["skipped"]["subject_consistency"]


def test_dimension_with_files_present_is_available(tmp_path):
    cache = tmp_path / "cache"
    (cache / "amt_model").mkdir(parents=True)
    (cache / "amt_model" / "amt-s.pth").write_bytes(b"")
    status = vb.available_dimensions(cache, ["motion_smoothness", "human_action"])
    assert status["available"] == ["motion_smoothness"]  # omegaconf and cv2 are installed
    assert "l16_ptk710_ftk710_ftk400_f16_res224.pth" in status["unavailable"]["human_action"]


def test_a_dimension_that_crashes_is_reported_as_failed(tmp_path):
    # motion_smoothness passes the file check but its checkpoint is empty: VBench's
    # AMT loader raises, the other dimension still runs.
    cache = tmp_path / "cache"
    (cache / "amt_model").mkdir(parents=True)
    (cache / "amt_model" / "amt-s.pth").write_bytes(b"")
    vb.export_for_vbench([("a still object", 0, _static_clip())], tmp_path / "v", mode="custom_input")
    res = vb.evaluate(tmp_path / "v", "crash", ["motion_smoothness", "temporal_flickering"], mode="custom_input",
                      out_dir=tmp_path / "o", device="cpu", cache_dir=cache)
    assert "motion_smoothness" in res["failed"] and "raised" in res["failed"]["motion_smoothness"]
    assert "motion_smoothness" not in res["scores"]
    assert res["scores"]["temporal_flickering"] == pytest.approx(1.0, abs=1e-6)


def test_vbench_cannot_download_inside_the_harness(tmp_path):
    import vbench.utils

    with vb._offline_vbench(tmp_path / "cache"):
        assert vbench.utils.CACHE_DIR == str(tmp_path / "cache")
        with pytest.raises(vb.DownloadBlocked, match="wget"):
            vbench.utils.init_submodules(["motion_smoothness"], local=True)
    assert vbench.utils.CACHE_DIR != str(tmp_path / "cache")  # restored


def test_evaluate_rejects_bad_requests(tmp_path):
    vb.export_for_vbench([("a still object", 0, _static_clip())], tmp_path / "v", mode="custom_input")
    kw = dict(out_dir=tmp_path / "o", device="cpu", cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="did you mean 'temporal_flickering'"):
        vb.evaluate(tmp_path / "v", "n", ["temporal_flickring"], mode="custom_input", **kw)
    with pytest.raises(ValueError, match="color.*custom_input"):
        vb.evaluate(tmp_path / "v", "n", ["color"], mode="custom_input", **kw)
    with pytest.raises(ValueError, match="only for custom_input"):
        vb.evaluate(tmp_path / "v", "n", ["temporal_flickering"], prompts={"a still object-0.mp4": "x"}, **kw)
    with pytest.raises(ValueError, match="not videos"):
        vb.evaluate(tmp_path / "v", "n", ["temporal_flickering"], mode="custom_input",
                    prompts={"other-0.mp4": "x"}, **kw)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        vb.evaluate(tmp_path / "nope", "n", ["temporal_flickering"], mode="custom_input", **kw)
    with pytest.raises(ValueError, match="mode must be one of"):
        vb.evaluate(tmp_path / "v", "n", ["temporal_flickering"], mode="vbench_category", **kw)
