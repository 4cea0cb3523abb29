"""Strict offline mode: variables, library flags, the connection guard, a smoke run that
opens no socket; and the runtime provenance."""
from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import types

import pytest

from bench.net import offline
from tests.netcache import refuse_network


@pytest.fixture(autouse=True)
def guard_off_afterwards():
    yield
    offline.release()


@pytest.fixture
def socket_recorder(monkeypatch):
    """Every attempt to open a connection or resolve a name is recorded, then refused."""
    return refuse_network(monkeypatch)


def test_enforce_sets_the_variables_and_the_copies_libraries_made_at_import(no_offline_env, monkeypatch,
                                                                            socket_recorder, tmp_path):
    import diffusers.utils.hub_utils as diffusers_hub
    import huggingface_hub
    import huggingface_hub.constants as hub_constants

    # as if these libraries had been imported while the variables were unset
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(diffusers_hub, "HF_HUB_OFFLINE", False)
    assert not offline.requested()
    done = offline.enforce()
    for key, value in offline.OFFLINE_ENV.items():
        assert os.environ[key] == value
    assert hub_constants.HF_HUB_OFFLINE is True and diffusers_hub.HF_HUB_OFFLINE is True
    assert "diffusers.utils.hub_utils.HF_HUB_OFFLINE" in done["library_flags"] and done["network_guard"]
    assert offline.requested() and huggingface_hub.is_offline_mode()
    # a Hub download now fails at once, from the cache, without touching a socket
    with pytest.raises(Exception) as err:
        huggingface_hub.hf_hub_download("org/not-cached", "model.safetensors", cache_dir=str(tmp_path))
    assert "offline" in f"{type(err.value).__name__} {err.value}".lower() or "cache" in str(err.value).lower()
    assert socket_recorder == []


def test_guard_refuses_the_network_and_leaves_loopback_open():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        with offline.guard():
            with pytest.raises(offline.NetworkBlocked, match=r"203\.0\.113\.7:80 was attempted and refused"):
                socket.create_connection(("203.0.113.7", 80), timeout=0.5)
            with pytest.raises(offline.NetworkBlocked, match="huggingface.co:443"):
                socket.getaddrinfo("huggingface.co", 443)
            raw = socket.socket()
            raw.settimeout(0.5)
            with pytest.raises(offline.NetworkBlocked, match="198.51.100.1:443"):
                raw.connect(("198.51.100.1", 443))
            raw.close()
            client = socket.create_connection(server.getsockname(), timeout=2)   # loopback: allowed
            client.close()
            assert isinstance(socket.getaddrinfo("localhost", 80), list)
        assert not offline.guarding()
        assert {"203.0.113.7:80", "huggingface.co:443", "198.51.100.1:443"} <= set(offline.blocked())
    finally:
        server.close()


def test_offline_is_requested_by_environment_or_config(no_offline_env, monkeypatch):
    from bench.plan.config import compose

    assert not offline.requested(compose(["experiment=smoke"]))
    assert offline.requested(compose(["experiment=smoke", "preflight.offline=true"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert offline.requested(compose(["experiment=smoke"]))
    assert offline.enforce_if_requested(None) and offline.guarding()


def test_runtime_provenance_records_backends_determinism_and_versions(monkeypatch):
    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        pipe = types.SimpleNamespace(unet=types.SimpleNamespace(attn_processors={"a": AttnProcessor2_0()}))
        info = offline.runtime_provenance("cpu", pipe)
    finally:
        torch.use_deterministic_algorithms(was)
    assert set(info) == {"device", "attention", "determinism", "versions", "offline"}
    assert info["device"] == {"type": "cpu", "id": "cpu"}
    sdpa = info["attention"]["torch_sdpa_enabled"]
    assert {"flash", "mem_efficient", "math", "cudnn"} <= set(sdpa) and sdpa["math"] is True
    assert info["attention"]["diffusers_processors"] == ["AttnProcessor2_0"]
    assert info["attention"]["xformers"]["installed"] == (importlib.util.find_spec("xformers") is not None)
    det = info["determinism"]
    assert det["deterministic_algorithms"] is True and det["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert det["cudnn_benchmark"] == torch.backends.cudnn.benchmark
    v = info["versions"]
    assert v["torch"] == torch.__version__ and v["cuda"] == torch.version.cuda
    assert v["diffusers"] == importlib.metadata.version("diffusers")
    assert info["offline"]["HF_HUB_OFFLINE"] == "1"
    json.dumps(info)   # goes into results.json as is


@pytest.mark.slow
def test_smoke_run_in_strict_offline_mode_opens_no_socket(no_offline_env, monkeypatch, socket_recorder, tmp_path):
    """A tiny smoke run (a CFG teacher and Ours-R with its LoRA and personalized base,
    one clip each, CLIPSIM on a tiny CLIP) in strict offline mode, with an empty Hugging
    Face cache: preflight, build, generate, extract features and score without one
    connection or name lookup."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("LCMBENCH_CACHE", str(tmp_path / "lcm"))
    from bench.plan.config import compose
    from bench.preflight.checklist import check
    from bench.run.pipeline import run

    assert offline.enforce_if_requested(None)
    blocked_before = len(offline.blocked())
    # FVD needs two clips per (method, NFE) and VBench one of the protocol's NFEs: both off here
    cfg = compose(["experiment=smoke", "protocol.num_classes=1", "protocol.videos_per_prompt=1", "protocol.nfe=[1]",
                   "runner.progress=false", "metrics.fvd.enabled=false", "~methods.dpmpp", "~methods.animatelcm",
                   "metrics.vbench.enabled=false", f"cache_dir={tmp_path / 'lcm'}"])
    report = check(cfg, tmp_path / "run", echo=False)
    assert report.offline and report.plan.clips == 2
    results = run(cfg, tmp_path / "run")
    assert sorted((r.method, r.metric) for r in results.rows) == [("animatelcm_r", "clipsim"), ("ddim", "clipsim")]
    assert (tmp_path / "run" / "results.json").is_file()
    files = list((tmp_path / "run" / "store").rglob("*.npz"))
    assert len(files) == 2
    # both clips are (method, NFE) samples kept with frames: the estimate holds them within a block
    block = report.plan.disk_detail["block"]
    for f in files:
        assert 0 <= report.plan.disk_detail["bytes_per_clip_with_frames"] - f.stat().st_size < block
    assert socket_recorder == [] and offline.blocked()[blocked_before:] == []


@pytest.mark.parametrize("value, offline", [("1", True), ("yes", True), ("TRUE", True), (" on ", True),
                                            ("0", False), ("", False), ("no", False)])
def test_offline_flag_is_parsed_as_huggingface_hub_does(monkeypatch, value, offline):
    """One parser for every offline check (weights, captions, CLIP, the network guard)."""
    from bench.net import offline as off
    from metrics import clipsim
    from models.weights import hub_offline

    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("LCMBENCH_OFFLINE", raising=False)
    assert hub_offline() is offline and off.requested() is offline
    if offline:
        assert clipsim.hub_offline() is True
