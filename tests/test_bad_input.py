"""Every input a user can get wrong ends with one `lcmbench: error: ...` line saying
what was wrong and what to do, exit status 2, and no partial result.

The table of these cases is in docs/robustness.md."""
import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.run.cli import run_with_clear_errors
from tests.conftest import REPO, compose

# one method, two clips, no metrics: each case fails (or finishes) in seconds
BASE = ["~methods.dpmpp", "~methods.animatelcm_r", "~methods.ddim", "protocol.num_classes=1",
        "protocol.videos_per_prompt=2", "protocol.nfe=[1]", "protocol.num_frames=9", "metrics.fvd.enabled=false",
        "metrics.clipsim.enabled=false", "metrics.vbench.enabled=false", "runner.progress=false", "report.bootstrap=0"]


@pytest.fixture(autouse=True)
def _no_launcher_env(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(name, raising=False)


def error_line(text: str) -> str:
    """The single error line, which must end the output (library warnings may precede
    it). Several problems found together follow it as an indented, numbered list; they
    are returned joined to it."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    errors = [i for i, ln in enumerate(lines) if ln.startswith("lcmbench: error: ")]
    assert len(errors) == 1, text[-3000:]
    rest = lines[errors[0] + 1:]
    assert all(re.match(r"  \d+\. ", ln) for ln in rest), text[-3000:]
    return " ".join([lines[errors[0]], *rest])


def assert_nothing_made(run_dir: Path) -> None:
    assert not (run_dir / "results.json").exists()
    assert not list(run_dir.rglob("*.npz")) and not list(run_dir.rglob(".*.tmp*"))


def fails(tmp_path, capsys, overrides, match, run_dir=None):
    run_dir = run_dir or tmp_path / "run"
    cfg = compose([*BASE, *overrides])
    with pytest.raises(SystemExit) as info:
        run_with_clear_errors(cfg, run_dir)
    assert info.value.code == 2
    line = error_line(capsys.readouterr().err)
    assert re.search(match, line), line
    assert_nothing_made(run_dir)
    return line


def cli(args, env=None, timeout=300):
    proc = subprocess.run([sys.executable, "run_bench.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})
    return proc.returncode, proc.stdout + proc.stderr


# ------------------------------------------------------------------ names (before Hydra starts)

@pytest.mark.parametrize("arg,match", [
    ("experiment=tabel1", r"unknown experiment 'tabel1'.*Did you mean 'table1'\?.*Available: "),
    ("model@methods.animatelcm=animatelcn", r"unknown model 'animatelcn'.*Did you mean 'animatelcm'\?"),
    ("+metric@metrics.fvd=fvd_randm", r"unknown metric 'fvd_randm'.*Did you mean 'fvd_random'\?"),
    ("sampler@methods.ddim.sampler=ddim_trailng", r"unknown sampler 'ddim_trailng'.*Did you mean 'ddim_trailing'\?"),
    ("methods.animatelcm.name=animatelcmm", r"unknown model 'animatelcmm'.*Did you mean 'animatelcm'\?"),
    ("methods.ddim.sampler.kind=ddmi", r"unknown sampler kind 'ddmi'.*Did you mean 'ddim'\?"),
    ("+metric@metrics.fvdd=fvd_random", r"unknown metric 'fvdd'.*Did you mean 'fvd'\?"),
    ("runner.batchsize=2", r"unknown setting 'runner.batchsize'.*Did you mean 'batch_size'\?"),
    ("methods.ddim.lora_sclae=0.5", r"unknown setting 'methods.ddim.lora_sclae'.*Did you mean 'lora_scale'\?"),
])
def test_misspelt_names_are_caught_before_hydra(arg, match, tmp_path):
    code, out = cli([arg, f"hydra.run.dir={tmp_path}"], timeout=60)
    assert code == 2 and re.search(match, error_line(out)), out
    assert not (tmp_path / ".hydra").exists(), "refused before Hydra made its output folder"


def test_valid_sweeps_and_launcher_overrides_pass_the_check():
    from bench.plan.overrides import check_overrides

    ok = ["experiment=smoke,table1", "shard.index=range(8)", "hydra/launcher=submitit_slurm",
          "hydra.launcher.timeout_min=120", "~methods.dpmpp", "metrics.fvd.options.x=1",
          "-m", "protocol.nfe=[1,2]", "run_dir=/x", "shard.count=8"]
    assert check_overrides(ok, str(REPO / "bench" / "configs")) is None


# ------------------------------------------------------------------ names and values (in the run)
# The same names written in an experiment file reach the run; preflight reports them.

def test_unknown_model_name(tmp_path, capsys):
    fails(tmp_path, capsys, ["methods.animatelcm.name=animatelcmm"],
          r"Unknown model 'animatelcmm'\. Did you mean 'animatelcm'\?.* Fix methods.animatelcm")


def test_unknown_sampler_kind(tmp_path, capsys):
    fails(tmp_path, capsys, ["methods.animatelcm.sampler.kind=lcn"], r"Unknown sampler kind 'lcn'.*lcm, ddim, dpmpp")


def test_unknown_metric_name(tmp_path, capsys):
    fails(tmp_path, capsys, ["+metric@metrics.fvdd=fvd_random"],
          r"Unknown metric 'fvdd'.*Did you mean 'fvd'\?.*fvd, kvd")


def test_unknown_stage(tmp_path, capsys):
    fails(tmp_path, capsys, ["stages=[preflight,generat]"], r"Unknown stage\(s\) \['generat'\]")


def test_half_precision_on_the_cpu(tmp_path, capsys):
    fails(tmp_path, capsys, ["runner.device=cpu", "runner.dtype=float16"],
          r"dtype=float16 on the CPU is not supported.*Set runner.device / runner.dtype")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_cuda_without_a_gpu(tmp_path, capsys):
    fails(tmp_path, capsys, ["runner.device=cuda"], r"device=cuda was asked for but no CUDA GPU is visible")


def test_prompt_file_in_the_wrong_format(tmp_path, capsys):
    bad = tmp_path / "captions.yaml"
    bad.write_text("# captions\nApplyEyeMakeup - a girl applying eye makeup\n")
    fails(tmp_path, capsys, ["protocol.prompt_set=file", f"protocol.prompt_file={bad}"],
          r"line 2: expected 'ClassName: caption\.'")


def test_prompt_file_with_the_wrong_class_count(tmp_path, capsys):
    bad = tmp_path / "captions.yaml"
    bad.write_text("ApplyEyeMakeup: A girl.\nArchery: An archer.\nBiking: A cyclist.\n")
    fails(tmp_path, capsys, ["protocol.prompt_set=file", f"protocol.prompt_file={bad}"],
          r"has 3 classes, expected the 101 UCF-101 classes")


def test_missing_prompt_file(tmp_path, capsys):
    fails(tmp_path, capsys, ["protocol.prompt_set=file", f"protocol.prompt_file={tmp_path / 'nope.yaml'}"],
          r"caption file .*nope.yaml does not exist. Fix protocol.prompt_file")


def _fvd_on(reference):
    # uncalibrated random I3D: the dataset is checked before any footage is needed
    return ["metrics.fvd.enabled=true", f"metrics.fvd.options.reference={reference}",
            "++metrics.fvd.options.calibrate=false", "++metrics.fvd.options.num_frames=9"]


def test_dataset_root_without_videos(tmp_path, capsys):
    empty = tmp_path / "UCF-101"
    (empty / "ApplyEyeMakeup").mkdir(parents=True)
    (empty / "ApplyEyeMakeup" / "notes.txt").write_text("no videos here")
    fails(tmp_path, capsys, _fvd_on(empty), r"UCF-101 root .*UCF-101 holds no videos.*Check that UCF101.rar was "
                                            r"extracted there")


def test_dataset_root_that_does_not_exist(tmp_path, capsys):
    fails(tmp_path, capsys, _fvd_on(tmp_path / "nowhere"), r"UCF-101 root .*nowhere does not exist.*set "
                                                          r"metrics.fvd.options.reference")


def test_unreadable_video(tmp_path, capsys):
    root = tmp_path / "UCF-101" / "ApplyEyeMakeup"
    root.mkdir(parents=True)
    (root / "v_ApplyEyeMakeup_g01_c01.avi").write_bytes(np.random.default_rng(0).bytes(4096))
    fails(tmp_path, capsys, _fvd_on(tmp_path / "UCF-101"),
          r"metric 'fvd' could not be prepared: only 0 usable clips .*\(1 unreadable.*"
          r"Unreadable: ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi: ")


@pytest.mark.slow
def test_missing_weights(tmp_path):
    code, out = cli([f"hydra.run.dir={tmp_path}", *BASE, "weights=pretrained",
                     "methods.animatelcm.base=lcmbench-tests/no-such-model"],
                    env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    line = error_line(out)
    # every missing weight of the run at once, each with how to get it
    assert code == 2 and re.search(r"preflight found 2 problems; nothing was built: +1\. 'lcmbench-tests/no-such-model' "
                                   r"\(methods.animatelcm.base\) is not in the Hugging Face cache .*bench.prefetch.* "
                                   r"2\. 'wangfuyun/AnimateLCM'", line), out
    assert_nothing_made(tmp_path)


def test_shard_jobs_without_a_shared_run_dir(tmp_path, capsys):
    fails(tmp_path, capsys, ["shard.count=2", "shard.index=0"], r"shard.count=2 needs run_dir=PATH")


def test_shard_index_out_of_range(tmp_path, capsys):
    fails(tmp_path, capsys, ["shard.count=2", "shard.index=2", f"run_dir={tmp_path / 'shared'}"],
          r"shard.index=2 is outside 0..1", run_dir=tmp_path / "shared")


def test_scoring_a_store_that_lacks_clips(tmp_path, capsys):
    fails(tmp_path, capsys, ["stages=[score,report]"],
          r"lacks 2 of 2 clips \(e\.g\. animatelcm/nfe1/ApplyEyeMakeup/000\), so nothing was scored")


def test_a_store_made_with_other_settings(tmp_path, capsys):
    from bench.generate.store import ClipStore

    run_dir = tmp_path / "run"
    key = "animatelcm/nfe1/ApplyEyeMakeup/000"
    ClipStore(run_dir / "store").write(key, {"key": key, "fingerprint": "0123456789abcdef"}, {})
    cfg = compose(BASE)
    with pytest.raises(SystemExit) as info:
        run_with_clear_errors(cfg, run_dir)
    assert info.value.code == 2
    assert re.search(r"already holds clip .* made with other settings.*new run directory",
                     error_line(capsys.readouterr().err))
    assert not (run_dir / "results.json").exists() and len(list(run_dir.rglob("*.npz"))) == 1


@pytest.mark.slow
def test_disk_full_keeps_every_finished_clip_and_resumes(tmp_path, capsys, monkeypatch, cache_dir):
    from bench.generate import store as store_mod
    from bench.generate.store import ClipStore

    run_dir = tmp_path / "run"
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if "/store/" in target and not os.path.isdir(target):   # clip files, not their folders
            calls.append(fd)
            if len(calls) == 2:   # the second clip's write hits a full disk
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(store_mod.os, "fsync", fsync)
    cfg = compose([*BASE, "stages=[preflight,generate]"])
    with pytest.raises(SystemExit) as info:
        run_with_clear_errors(cfg, run_dir)
    monkeypatch.undo()
    assert info.value.code == 2 and len(calls) == 2
    line = error_line(capsys.readouterr().err)
    assert re.search(r"disk full while writing under .*run\. .*every clip already in the store is intact.*resume",
                     line), line
    store = ClipStore(run_dir / "store")
    assert len(store.keys()) == 1 and store.read(store.keys()[0]) is not None
    assert not list(run_dir.rglob(".*.tmp*")) and not (run_dir / "results.json").exists()
    first = store.path(store.keys()[0]).read_bytes()

    run_with_clear_errors(compose([*BASE, "stages=[preflight,generate]"]), run_dir)
    assert len(store.keys()) == 2 and store.path(store.keys()[0]).read_bytes() == first


# ------------------------------------------------------------------ weight files

class Payload:
    """A pickled object of a custom class: torch.load(weights_only=True) must refuse it."""

    def __init__(self):
        self.note = "arbitrary code could run here"


def test_pickle_checkpoints_load_only_as_plain_tensors(tmp_path):
    from models.weights import UnsafeWeights, load_state_dict

    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": {"w": torch.arange(4.0)}}, plain)
    assert torch.equal(load_state_dict(plain)["w"], torch.arange(4.0))

    unsafe = tmp_path / "unsafe.ckpt"
    torch.save({"w": torch.ones(2), "extra": Payload()}, unsafe)
    with pytest.raises(UnsafeWeights, match=r"unsafe.ckpt is a pickle checkpoint that holds more than tensors.*"
                                             r"Convert it to .safetensors.*allow_unsafe_pickle=true"):
        load_state_dict(unsafe)
    state = load_state_dict(unsafe, allow_unsafe_pickle=True)
    assert isinstance(state["extra"], Payload) and torch.equal(state["w"], torch.ones(2))

    from safetensors.torch import save_file

    safe = tmp_path / "lora.safetensors"
    save_file({"w": torch.zeros(3)}, str(safe))
    assert torch.equal(load_state_dict(safe)["w"], torch.zeros(3))
    with pytest.raises(ValueError, match="Unsupported weight file type '.npz'"):
        load_state_dict(tmp_path / "weights.npz")


def test_pinned_files_are_checked_and_others_are_hashed(tmp_path):
    import hashlib

    from models import weights

    f = tmp_path / "AnimateLCM_sd15_t2v_lora.safetensors"
    f.write_bytes(b"not the published file")
    digest = hashlib.sha256(f.read_bytes()).hexdigest()
    assert weights.check_sha256(f, None) == digest            # unpinned: hashed, recorded by the caller
    with pytest.raises(ValueError, match="Checksum mismatch .* delete it and fetch it again"):
        weights.check_sha256(f, "0" * 64)
    assert weights.check_sha256(f, digest) == digest
