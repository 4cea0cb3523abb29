"""Preflight: every problem at once, nothing built, nothing fetched; the plan's numbers."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from omegaconf import open_dict

import metrics
from bench.plan.config import compose
from bench.plan.metric_settings import enabled_metrics, run_facts
from bench.preflight import assets
from bench.preflight import estimates
from bench.preflight import checklist as pfl
from metrics.fvd_plugin import FVD_RESAMPLE_S
from metrics.kvd_plugin import KVD_RESAMPLE_S
from tests.conftest import OFFICIAL_CAPTIONS, official_captions_or_skip
from tests.netcache import put_hub_file, refuse_network

HUB_VARS = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
            "LCMBENCH_OFFLINE")


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Empty, private caches: HF_HOME, LCMBENCH_CACHE, VBENCH_CACHE_DIR under tmp_path."""
    for var in HUB_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("LCMBENCH_CACHE", str(tmp_path / "lcm"))
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "vbench"))
    (tmp_path / "hf").mkdir()
    (tmp_path / "lcm").mkdir()
    return tmp_path


@pytest.fixture
def nothing_built(monkeypatch):
    """Building any model or metric, or opening any socket, fails the test."""
    import metrics.clipsim
    import metrics.fvd
    import models.animatediff

    def refuse(*args, **kwargs):
        raise AssertionError("preflight must not build anything")

    monkeypatch.setattr(models.animatediff, "build_model", refuse)
    monkeypatch.setattr(metrics.fvd, "build", refuse)
    monkeypatch.setattr(metrics.clipsim, "build", refuse)
    return refuse_network(monkeypatch)


def fill_table1_cache(cfg, hub: Path) -> None:
    """Every file preflight asks for, as small stand-ins."""
    needs = assets.weight_needs(cfg)
    run = run_facts(cfg)
    assets.metric_hub_needs(needs, {name: metrics.plugin(name).files(options, run)
                                    for name, options in enabled_metrics(cfg).items()})
    for need in needs.hub.values():
        for group in need.groups:
            put_hub_file(hub, need.repo, group[0], f"{need.repo}/{group[0]}".encode() * 8)


def fake_ucf101(root: Path, classes=("ApplyEyeMakeup", "Archery"), per_class=2) -> Path:
    for c in classes:
        (root / "UCF-101" / c).mkdir(parents=True, exist_ok=True)
        for g in range(per_class):
            (root / "UCF-101" / c / f"v_{c}_g{g + 1:02d}_c01.avi").write_bytes(b"RIFF" + bytes(64))
    return root


# ----------------------------------------------------------------- all problems at once

def test_three_planted_problems_are_reported_together_and_nothing_is_built(env, nothing_built):
    """Missing weights (empty HF cache), a detector with the wrong sha256 and an empty
    dataset root: one report lists all three kinds, each with what to do."""
    i3d = env / "i3d_pretrained_400.pt"
    i3d.write_bytes(b"not the real detector" * 100)
    wrong = "0" * 64
    empty_root = env / "UCF-101-empty"
    empty_root.mkdir()
    cfg = compose(["experiment=table1", "metric@metrics.clipsim=clipsim_tiny", "protocol.prompt_set=classnames",
                   f"metrics.fvd.options.path={i3d}", f"+metrics.fvd.options.sha256={wrong}",
                   f"metrics.fvd.options.reference={empty_root}", "runner.device=cpu", "runner.dtype=float32"])
    report = pfl.preflight(cfg, env / "run")
    areas = [p.area for p in report.problems]
    assert set(areas) == {"weights", "metric", "dataset"}, [p.line() for p in report.problems]

    weights = [p for p in report.problems if p.area == "weights"]
    missing = " ".join(p.what for p in weights)
    for repo in ("stable-diffusion-v1-5/stable-diffusion-v1-5", "wangfuyun/AnimateLCM", "guoyww/animatediff-motion-adapter-v1-5-2",
                 "emilianJR/epiCRealism"):
        assert f"'{repo}'" in missing
    assert all("is not in the Hugging Face cache " + str(env / "hf" / "hub") in p.what for p in weights)
    assert all("python -m bench.prefetch experiment=table1" in p.fix for p in weights)

    (checksum,) = [p for p in report.problems if p.area == "metric"]
    actual = hashlib.sha256(i3d.read_bytes()).hexdigest()
    assert f"has sha256 {actual}, expected {wrong}" in checksum.what and "download it again" in checksum.fix
    (dataset,) = [p for p in report.problems if p.area == "dataset"]
    assert "holds no videos" in dataset.what and "UCF101.rar" in dataset.fix
    assert all(line.count("Fix:") == 1 for line in (p.line() for p in report.problems))

    assert not report.ok and nothing_built == []
    with pytest.raises(pfl.PreflightError) as err:
        pfl.check(cfg, env / "run", echo=False)
    assert str(err.value).count("Fix:") == len(report.problems)
    text = pfl.format_plan(report)
    assert f"Problems ({len(report.problems)})" in text and "NOT READY" in text


def test_everything_in_place_is_ready(env, nothing_built):
    official_captions_or_skip()
    i3d = env / "lcm" / "i3d_pretrained_400.pt"
    i3d.write_bytes(b"detector" * 1000)
    root = fake_ucf101(env / "data")
    cfg = compose(["experiment=table1", f"protocol.prompt_file={OFFICIAL_CAPTIONS}",
                   f"metrics.fvd.options.reference={root}",
                   f"+metrics.fvd.options.sha256={hashlib.sha256(i3d.read_bytes()).hexdigest()}",
                   "runner.device=cpu", "runner.dtype=float32"])
    fill_table1_cache(cfg, env / "hf" / "hub")
    report = pfl.preflight(cfg, env / "run")
    assert report.ok, [p.line() for p in report.problems]
    assert nothing_built == []
    status = {a.name: a for a in report.assets}
    assert status["stable-diffusion-v1-5/stable-diffusion-v1-5"].status == "ok"
    assert status["laion/CLIP-ViT-H-14-laion2B-s32B-b79K"].area == "metric"
    assert status["FVD detector i3d_pretrained_400.pt"].detail == "sha256 verified"
    assert status["UCF-101"].detail.startswith("4 videos in 2 classes")
    assert report.prompt_set["sha256"] == "62a73e321bcf3f7ab5cfc51e3b0b2ac7f4ce81e90d4728d935d8ec84d41ebbb9"
    assert any("13320" in n for n in report.notes)          # a partial UCF-101 is said plainly
    assert "READY: no problems found." in pfl.format_plan(report)

    # bit rot in a cached blob is found when hashes are checked
    lora = env / "hf" / "hub" / "models--wangfuyun--AnimateLCM" / "snapshots" / ("c" * 40) / \
        "AnimateLCM_sd15_t2v_lora.safetensors"
    Path(os.path.realpath(lora)).write_bytes(b"x" * 20)
    assert pfl.preflight(cfg, env / "run").ok                 # sizes are not checked by default
    with open_dict(cfg):
        cfg.preflight.verify_hashes = True
    (bad,) = pfl.preflight(cfg, env / "run").problems
    assert bad.area == "weights" and "its Hub checksum is" in bad.what and "fetch it again" in bad.fix


def test_official_caption_file_with_another_checksum_is_refused(env, nothing_built):
    edited = env / "UCF101_prompts.yaml"
    edited.write_text("# my captions\nApplyEyeMakeup: a person applies eye makeup.\n")
    cfg = compose(["experiment=smoke", "protocol.prompt_set=official", f"protocol.prompt_file={edited}"])
    report = pfl.preflight(cfg, env / "run")
    (p,) = report.problems
    assert p.area == "prompts" and "not the official caption file's" in p.what and "prompt_set=file" in p.fix


def test_config_mistakes_are_listed_with_the_rest(env, nothing_built):
    cfg = compose(["experiment=smoke", "stages=[preflight,generat]", "protocol.num_frames=8",
                   "protocol.num_classes=1", "protocol.videos_per_prompt=1", "+metrics.fvd.options.batchsize=4",
                   "+metrics.fvd.options.num_frames=16",
                   "runner.device=cuda:7"])
    report = pfl.preflight(cfg, env / "run")
    text = "\n".join(p.line() for p in report.problems)
    assert "Unknown stage(s) ['generat']" in text
    assert "unknown option(s) 'batchsize' (did you mean 'batch_size'?)" in text
    assert "FVD needs clips of at least 9 frames" in text
    assert "num_frames=16 but the protocol makes 8-frame clips" in text
    assert "FVD needs at least 2 clips per (method, NFE); this protocol makes 1" in text
    import torch

    if not torch.cuda.is_available():
        assert "[device]" in text


def test_vbench_dimensions_without_weights(env, nothing_built):
    """Dimensions whose model files are missing: a problem when partial VBench scores are
    not allowed, a note when they are; the VBench clips' frames and exports count as disk."""
    base = ["experiment=smoke", "metrics.vbench.enabled=true", "metrics.vbench.options.nfe=4",
            "metrics.vbench.options.dimensions=[temporal_flickering,subject_consistency]"]
    strict = pfl.preflight(compose(base + ["metrics.vbench.options.allow_missing=false"]), env / "run")
    vb = [p for p in strict.problems if "VBench" in p.what]
    assert [p.what.split(" cannot")[0] for p in vb] == ["VBench dimension subject_consistency"]
    assert "dino_vitbase16_pretrain.pth" in vb[0].what and "metrics.vbench.options.allow_missing=true" in vb[0].fix
    assert any(a.name == "VBench subject_consistency" and a.status == "missing" for a in strict.assets)

    lenient = pfl.preflight(compose(base + ["metrics.vbench.options.allow_missing=true"]), env / "run")
    assert lenient.ok and any("subject_consistency will be skipped" in n for n in lenient.notes)
    d = lenient.plan.disk_detail
    assert d["clips_with_frames"] == 4 * 3 * 2 + 3 * 4     # every NFE-4 clip + one sample per other cell
    lossless = -(-16 * 64 * 64 * 25 // 80 // d["block"]) * d["block"]   # 2.5 bits per pixel, whole blocks
    assert d["exports_by_metric"] == {"vbench": 4 * 3 * 2 * lossless} == {"vbench": d["exports"]}
    assert "VBench exports" in pfl.format_plan(lenient)

    (wrong,) = pfl.preflight(compose(base[:2] + ["metrics.vbench.options.nfe=3"]), env / "run").problems
    assert wrong.area == "config" and "metrics.vbench.options.nfe=3 is not one of protocol.nfe" in wrong.what


def test_smoke_experiment_is_ready_and_cli_exit_codes(env, capsys):
    assert pfl.main(["experiment=smoke", "--run-dir", str(env / "run"), "--json", str(env / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "READY: no problems found." in out and "4 methods x 4 NFE x 3 prompts x 2 videos = 96 clips" in out
    assert json.loads((env / "r.json").read_text())["ok"] is True
    assert pfl.main(["experiment=table1", "--run-dir", str(env / "run")]) == 2
    assert "NOT READY" in capsys.readouterr().out
    assert pfl.main(["experiment=nope"]) == 2


# ----------------------------------------------------------------- the plan

def test_table1_plan_numbers(env):
    cfg = compose(["experiment=table1", "preflight.time_on=H100"])
    plan = pfl.preflight(cfg, env / "run").plan
    assert plan.clips == 4 * 4 * 101 * 24 == 38_784 and plan.settings == 16
    assert plan.unet_evals_per_prompt_seed == 90               # 2 x 15 for each teacher, 15 for each student
    assert {c.name: c.evals_per_prompt_seed for c in plan.methods} == \
        {"ddim": 30, "dpmpp": 30, "animatelcm": 15, "animatelcm_r": 15}
    assert plan.unet_evals == 90 * 2424
    t = plan.tflop
    assert t["unet"] == pytest.approx(90 * 2424 * 17.75)      # 3.87 EFLOP
    assert t["vae"] == pytest.approx(38_784 * 16 * 2.5)       # 1.55 EFLOP
    assert t["clipsim"] == pytest.approx(38_784 * 16 * 0.335)    # 0.21 EFLOP
    assert t["fvd"] == pytest.approx(38_784 * 0.0556)
    assert t["total"] == pytest.approx(5.634e6, rel=1e-3)     # 5.63 EFLOP (docs/preflight.md)
    stages = plan.time_stages
    device_s = stages["generation (UNet + VAE)"] + stages["features (FVD + CLIPSIM)"]
    assert device_s == pytest.approx(t["total"] / (989.4 * 0.5))
    assert "989 TFLOP/s dense float16 peak" in plan.time_basis and "50% utilisation" in plan.time_basis
    # the harness's own work adds to the device's: 4 pretrained builds, host work of 38,784
    # clips on the device path, 16 FVD and KVD cells x 1,000 resamples
    assert set(stages) >= {"model loading", "host work", "statistics"} and plan.time_s == pytest.approx(
        sum(stages.values()))
    assert stages["model loading"] == 4 * estimates.MODEL_LOAD_S["pretrained"]
    assert stages["host work"] == pytest.approx(38_784 * (estimates.HOST_MS_PER_CLIP["device"]
                                                          + estimates.STORE_WRITE_MS_PER_CLIP) / 1000)
    # KVD's resample (Table 1's 2,424 clips a cell) beside FVD's; FVD-inf has no bootstrap by default
    assert stages["statistics"] == pytest.approx(16 * 1000 * (FVD_RESAMPLE_S + KVD_RESAMPLE_S))
    d = plan.disk_detail
    assert d["clip_files"] == 38_784 and d["clips_with_frames"] == 16   # one sample clip per (method, NFE)
    assert d["bytes_per_clip_with_frames"] >= 16 * 512 * 512 * 3
    assert d["total"] == d["store"] + d["results"] and d["videos"] == 0
    text = pfl.format_plan(pfl.preflight(cfg, env / "run"))
    for piece in ("= 38,784 clips (16 frames, 512x512)", "90 per (prompt, seed) across 16 settings; 218,160 in all",
                  "compute      5.634 EFLOP", "time         ~3.3 h", "model loading 2 min, host work 5 min"):
        assert piece in text


def test_disk_estimate_matches_what_the_store_writes(tmp_path):
    from bench.generate.store import ClipStore

    prompt = "A video of boxing punching bag."
    feats = {"fvd/animatelcm-v2/i3d-000000000000/16f": ((400,), "float32"), "clipsim/ViT-H-14-laion2b_s32b_b79k":
             ((16,), "float64")}
    meta = {"key": "animatelcm_r/nfe8/BoxingPunchingBag/023", "method": "animatelcm_r", "nfe": 8,
            "class_name": "BoxingPunchingBag", "prompt": prompt, "video_index": 23, "seed": 2147483647,
            "fingerprint": "0" * 16, "finite": True, "batch_size": 4, "denoise_ms": 123456.789,
            "text_encode_ms": 12.345678, "decode_ms": 123456.789, "created": "2025-01-01T00:00:00"}
    store = ClipStore(tmp_path)
    arrays = {k: np.zeros(s, d) for k, (s, d) in feats.items()}
    path = store.write(meta["key"], meta, arrays, np.zeros((16, 64, 64, 3), np.uint8))
    assert estimates._clip_file_bytes(prompt, feats, (16, 64, 64, 3)) == path.stat().st_size
    path = store.write(meta["key"], meta, arrays)
    assert estimates._clip_file_bytes(prompt, feats, None) == path.stat().st_size


def test_not_enough_disk_is_a_problem_and_frames_count(env, monkeypatch):
    import shutil
    from collections import namedtuple

    cfg = compose(["experiment=smoke", "runner.save_frames=true", "runner.save_videos=true"])
    report = pfl.preflight(cfg, env / "run")
    d = report.plan.disk_detail
    assert d["clips_with_frames"] == 96 and d["videos"] > 0 and report.ok
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 ** 9, 10 ** 9, 1000))
    (p,) = pfl.preflight(cfg, env / "run").problems
    assert p.area == "disk" and "1000 B free" in p.what and "hydra.run.dir" in p.fix


def test_time_from_timing_results_of_the_same_device(env):
    """Settings timed at this size use their measured time; the others the achieved rate."""
    rows = [{"method": "animatelcm", "nfe": 4, "guidance_scale": 1.0, "denoise_ms_median": 100.0, "vae_ms": 50.0,
             "tflop_per_unet_eval": 17.75, "device": "NVIDIA H100 80GB HBM3", "dtype": "float16",
             "extra": {"unet_evals": 4, "num_frames": 16, "height": 512, "width": 512, "weights": "random"}},
            {"method": "tiny", "nfe": 1, "guidance_scale": 1.0, "denoise_ms_median": 1.0, "device":
             "NVIDIA H100 80GB HBM3", "dtype": "float16", "extra": {"weights": "tiny"}}]
    timing = env / "timing.json"
    timing.write_text(json.dumps({"kind": "lcmbench-timing", "timing": rows}))
    cfg = compose(["experiment=table1", "protocol.nfe=[4]", "preflight.time_on=H100",
                   f"preflight.timing_file={timing}", "~metrics.clipsim", "~metrics.fvd"])
    plan = pfl.preflight(cfg, env / "run").plan
    rate = 17.75 * 4 / 0.1                               # 710 TFLOP/s achieved by the UNet
    clips = 101 * 24
    expected = (clips * 0.1                              # animatelcm 4 steps: timed
                + clips * 4 * 17.75 / rate               # animatelcm_r 4 steps: at the achieved rate
                + 2 * clips * 8 * 17.75 / rate           # the two CFG teachers
                + 4 * clips * 16 * 2.5 / (16 * 2.5 / 0.05))   # VAE at its measured rate
    assert plan.time_stages["generation (UNet + VAE)"] == pytest.approx(expected)
    assert plan.time_s == pytest.approx(sum(plan.time_stages.values()))
    assert "timing.json" in plan.time_basis and "1 of 4 settings timed at this size" in plan.time_basis


def test_cpu_estimate_says_how_it_was_made(env):
    cfg = compose(["experiment=smoke", "runner.device=cpu"])
    plan = pfl.preflight(cfg, env / "run").plan
    assert plan.time_s > 0 and "GFLOP/s measured" in plan.time_basis and "assumed 50% utilisation" in plan.time_basis
