"""The timing protocol (bench/timing/denoising.py): config, rows, FLOP counting, device peaks."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from bench.timing import denoising as timing  # noqa: E402
from models import device  # noqa: E402
from tests.conftest import compose as compose_config  # noqa: E402

ROW_KEYS = {"method", "nfe", "guidance_scale", "denoise_ms_median", "denoise_ms_iqr", "text_encode_ms", "vae_ms",
            "n", "device", "dtype", "clock", "note", "peak_mem_mb", "tflop_per_unet_eval", "utilisation",
            "n_repeats", "extra"}


pytestmark = pytest.mark.usefixtures("one_thread")


def compose(*overrides):
    return compose_config(["experiment=timing", *overrides])


def tiny_overrides(tmp_path, *more):
    return ["weights=tiny", "runner.device=cpu", "runner.dtype=float32", "protocol.num_frames=2",
            "protocol.height=32", "protocol.width=32", "runner.timing.warmup=0", "runner.timing.repeats=1",
            f"cache_dir={tmp_path / 'cache'}", *more]


def test_timing_experiment_composes_with_the_schema():
    cfg = compose()
    assert cfg.experiment == "timing"
    assert cfg.weights == "random"
    assert sorted(cfg.methods) == sorted(timing.ALL_METHODS)
    assert list(cfg.protocol.nfe) == [1, 2, 4, 8]
    assert (cfg.protocol.num_frames, cfg.protocol.height, cfg.protocol.width) == (16, 512, 512)
    assert "timing" in cfg.stages
    settings = timing.settings_from_cfg(cfg, device="cpu", dtype="float32")
    assert settings.steps_for("ddim") == [1, 2, 4, 8, 25, 50]
    assert settings.steps_for("animatelcm") == [1, 2, 4, 8]
    assert settings.fast["enabled"] is True
    # the CPU variant from the experiment's header composes too
    small = compose("runner.device=cpu", "protocol.height=64", "protocol.width=64", "protocol.num_frames=8")
    assert timing.settings_from_cfg(small).height == 64


def test_misspelt_timing_key_fails_at_compose_time():
    with pytest.raises(Exception, match="repeat"):
        compose("runner.timing.repeat=3")


def test_device_peaks():
    assert device.device_peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16")[0] == pytest.approx(989.4)
    assert device.device_peak_tflops("NVIDIA H100 PCIe", "float16")[0] == pytest.approx(756.5)
    assert device.device_peak_tflops("NVIDIA H100 NVL", "bfloat16")[0] == pytest.approx(835.5)
    assert device.device_peak_tflops("NVIDIA H200", "bfloat16")[0] == pytest.approx(989.4)
    assert device.device_peak_tflops("NVIDIA A800-SXM4-80GB", "float16")[0] == pytest.approx(312.0)
    assert device.device_peak_tflops("NVIDIA A100 80GB PCIe", "bfloat16")[0] == pytest.approx(312.0)
    assert device.device_peak_tflops("NVIDIA L40S", "bfloat16")[0] == pytest.approx(362.05)
    assert device.device_peak_tflops("NVIDIA GeForce RTX 4090", "float16")[0] == pytest.approx(165.2)
    peak, note = device.device_peak_tflops("NVIDIA Some Future GPU", "bfloat16")
    assert peak is None and "PEAK_TFLOPS" in note
    peak, note = device.device_peak_tflops("NVIDIA H100 80GB HBM3", "float32")
    assert peak is None and "float32" in note


def test_flop_count_of_tiny_unet_is_positive_and_linear_in_frames(tmp_path):
    import models

    model = models.build("animatelcm", weights="tiny", device="cpu", dtype="float32", cache_dir=str(tmp_path))
    unet = model.pipeline.unet
    f8 = timing.unet_tflop(unet, 8, 64, 64)
    f16 = timing.unet_tflop(unet, 16, 64, 64)
    assert f8 > 0
    # convolutions and projections are linear in frames; temporal attention (quadratic) is small
    assert 1.9 < f16 / f8 < 2.1
    # 4x the pixels: about 4x the FLOPs (cross-attention to 77 tokens is linear in pixels too)
    assert 3.5 < timing.unet_tflop(unet, 8, 128, 128) / f8 < 4.5
    # counting leaves the model untouched and on its device
    assert next(unet.parameters()).device.type == "cpu"


def test_flop_count_of_full_size_unet_matches_the_documented_figure():
    """docs/speed.md: 17.75 TFLOP per evaluation at 16x64x64 latents (meta device: no compute)."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    with torch.device("meta"):
        unet2d = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                      block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
        adapter = MotionAdapter(block_out_channels=(320, 640, 1280, 1280), motion_layers_per_block=2,
                                motion_max_seq_length=32, use_motion_mid_block=True)
        unet = UNetMotionModel.from_unet2d(unet2d, adapter)
    assert timing.unet_tflop(unet, 16, 512, 512) == pytest.approx(17.75, rel=0.01)


def _check_rows(rows, methods, student_nfe, teacher_nfe):
    expected = {(m, n) for m in methods for n in student_nfe} | {("ddim", n) for n in teacher_nfe}
    assert {(r["method"], r["nfe"]) for r in rows} == expected
    for r in rows:
        assert set(r) == ROW_KEYS
        assert r["denoise_ms_median"] > 0 and r["denoise_ms_iqr"] >= 0
        assert r["text_encode_ms"] > 0 and r["vae_ms"] > 0
        assert r["tflop_per_unet_eval"] > 0
        assert r["clock"] == "wall" and r["dtype"] == "float32" and r["device"].startswith("cpu")
        assert r["peak_mem_mb"] is None and r["utilisation"] is None  # CPU: no GPU memory, no peak
        e = r["extra"]
        cfg = r["guidance_scale"] > 1
        assert e["unet_evals"] == r["nfe"] * (2 if cfg else 1)
        assert e["achieved_tflops"] > 0
        assert e["denoise_ms_min"] <= r["denoise_ms_median"] <= e["denoise_ms_max"]
        assert e["speedup_vs_teacher"] > 0
    teachers = [r for r in rows if r["method"] in ("ddim", "dpmpp")]
    students = [r for r in rows if r["method"] in ("animatelcm", "animatelcm_r")]
    assert all(r["guidance_scale"] == 7.5 for r in teachers)
    assert all(r["guidance_scale"] == 1.0 for r in students)


def _schema_valid(rows):
    """The rows drop into a results file as its 'timing' array."""
    from results.paper import as_results
    from results.schema import validate

    d = as_results()
    d["timing"] = json.loads(json.dumps(rows))
    validate(d)


def test_run_timing_from_config_on_tiny_models(tmp_path):
    from omegaconf import open_dict

    cfg = compose(*tiny_overrides(tmp_path, "protocol.nfe=[1,2]", "runner.timing.teacher_nfe=[3,5]"))
    with open_dict(cfg):  # two methods keep this fast; the slow test below times all four
        del cfg.methods["dpmpp"], cfg.methods["animatelcm_r"]
    rows = timing.run_timing(cfg)
    _check_rows(rows, ["ddim", "animatelcm"], [1, 2], [3, 5])
    _schema_valid(rows)
    summary = timing.summarize(rows, timing.settings_from_cfg(cfg))
    assert summary["reference"] is None  # no 4-step AnimateLCM setting in this run
    assert timing.find_row(rows, "ddim", 5)["extra"]["speedup_vs_teacher"] == pytest.approx(1.0)
    # fewer steps denoise faster than many steps of the same model
    assert timing.find_row(rows, "ddim", 5)["denoise_ms_median"] > timing.find_row(rows, "ddim", 1)["denoise_ms_median"]


@pytest.mark.slow
def test_run_timing_full_protocol_on_tiny_models(tmp_path):
    """Every method at NFE 1/2/4/8 and the teacher at 25/50 with CFG, speed-up measured in the same run."""
    cfg = compose(*tiny_overrides(tmp_path))
    rows = timing.run_timing(cfg)
    _check_rows(rows, timing.ALL_METHODS, [1, 2, 4, 8], [25, 50])
    _schema_valid(rows)
    summary = timing.summarize(rows, timing.settings_from_cfg(cfg))
    assert summary["ideal_speedup"] == 25
    assert summary["speedup"] > 1.0  # 100 UNet evaluations take longer than 4


def test_standalone_command_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "t.json"
    code = timing.main(["weights=tiny", "runner.device=cpu", "protocol.num_frames=2", "protocol.height=32",
                        "protocol.width=32", "~methods.dpmpp", "~methods.animatelcm_r", "protocol.nfe=[1,2]",
                        "runner.timing.teacher_nfe=[3]", "runner.timing.reference_nfe=2", "runner.timing.warmup=1",
                        "runner.timing.repeats=2", f"cache_dir={tmp_path}", "runner.fast.fuse_qkv=true",
                        "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Speed-up ddim 3 steps (CFG 7.5) / animatelcm 2 steps" in printed
    data = json.loads(out.read_text())
    assert data["kind"] == "lcmbench-timing"
    assert data["summary"]["ideal_speedup"] == 3
    assert data["summary"]["speedup"] > 0
    assert {(r["method"], r["nfe"]) for r in data["timing"]} == {("animatelcm", 1), ("animatelcm", 2), ("ddim", 1),
                                                                  ("ddim", 2), ("ddim", 3)}
    assert all(r["n_repeats"] == 2 and len(r["extra"]["denoise_ms_all"]) == 2 for r in data["timing"])
    assert data["timing"][0]["extra"]["fast"]["fuse_qkv"] is True


def test_bad_fast_option_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown fast path option 'compile'"):
        timing.parse_fast(True, ["compile=true"])
    with pytest.raises(ValueError, match="true or false"):
        timing.parse_fast(True, ["fuse_qkv=maybe"])


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="repeats >= 1"):
        timing.time_methods(timing.TimingSettings(methods={"animatelcm": None}, repeats=0, device="cpu"))
