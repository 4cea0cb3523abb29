"""Every experiment composes; typos are errors at start-up."""
import pytest
from omegaconf import OmegaConf

from tests.conftest import REPO, compose

EXPERIMENTS = sorted(p.stem for p in (REPO / "bench" / "configs" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment):
    cfg = compose([f"experiment={experiment}"])
    assert cfg.experiment == experiment
    OmegaConf.to_container(cfg, resolve=True)   # every interpolation resolves


def test_table1_is_the_paper_protocol():
    from bench.plan.prompts import classname_captions
    from bench.run.pipeline import make_plans

    cfg = compose(["experiment=table1"])
    assert set(cfg.methods) == {"ddim", "dpmpp", "animatelcm", "animatelcm_r"}
    p = cfg.protocol
    assert (p.videos_per_prompt, list(p.nfe), p.num_frames, p.height, p.width) == (24, [1, 2, 4, 8], 16, 512, 512)
    assert cfg.weights == "pretrained" and p.prompt_set == "official"
    plans = make_plans(cfg, classname_captions())
    assert sum(len(plan.clips) for plan in plans) == 4 * 4 * 101 * 24
    by_name = {plan.name: plan.spec for plan in plans}
    assert by_name["ddim"].guidance_scale == 7.5 and by_name["animatelcm"].guidance_scale == 1.0


def test_a_clip_fingerprint_covers_what_changes_its_pixels():
    """A resume with another dtype, geometry, weight mode or sampler setting must not
    reuse the stored clips; the same settings must."""
    from bench.plan.prompts import classname_captions
    from bench.run.pipeline import make_plans

    def fingerprints(overrides=(), dtype="float32"):
        return {p.name: p.fingerprint for p in make_plans(compose(list(overrides)), classname_captions(), dtype)}

    base = fingerprints()
    assert fingerprints() == base
    for changed in (fingerprints(dtype="bfloat16"), fingerprints(["protocol.height=32", "protocol.width=32"]),
                    fingerprints(["weights=random"]), fingerprints(["methods.animatelcm.lora_scale=0.5"])):
        assert changed["animatelcm"] != base["animatelcm"]
    # another method's settings leave this one's clips valid
    assert fingerprints(["methods.animatelcm.lora_scale=0.5"])["ddim"] == base["ddim"]
    # fast-path kernels that may change pixels count; the background writer alone does not
    assert fingerprints(["runner.fast.enabled=true"])["animatelcm"] != base["animatelcm"]
    assert fingerprints(["runner.fast.enabled=true", "runner.fast.attention=default", "runner.fast.fuse_qkv=true",
                         "runner.fast.channels_last_vae=false", "runner.fast.cudnn_benchmark=false"]) != base
    writer_only = ["runner.fast.enabled=true", "runner.fast.attention=default", "runner.fast.channels_last_vae=false",
                   "runner.fast.cudnn_benchmark=false", "runner.fast.writer_threads=2"]
    assert fingerprints(writer_only) == base
    assert fingerprints(["runner.fast.attention=eager"]) == base    # options of a disabled fast path do nothing


def test_smoke_is_the_default():
    cfg = compose([])
    assert cfg.experiment == "smoke" and cfg.weights == "tiny" and cfg.runner.device == "cpu"


@pytest.mark.parametrize("override", ["protocol.nfee=[1]", "runner.batchsize=2", "methods.ddim.lora_sclae=1.0",
                                      "methods.ddim.sampler.spacing=trailing"])
def test_a_misspelt_key_is_an_error(override):
    with pytest.raises(Exception) as info:
        compose([override])
    assert "nfee" in str(info.value) or "batchsize" in str(info.value) or "lora_sclae" in str(info.value) \
        or "spacing" in str(info.value)


def test_unknown_experiment_is_an_error():
    with pytest.raises(Exception, match="experiment"):
        compose(["experiment=tabel1"])


def test_an_appended_unknown_model_key_is_refused_before_anything_runs():
    from bench.plan.prompts import classname_captions
    from bench.run.pipeline import make_plans

    cfg = compose(["+methods.ddim.lora_sclae=1.0"])
    with pytest.raises(ValueError, match="Did you mean 'lora_scale'"):
        make_plans(cfg, classname_captions())
