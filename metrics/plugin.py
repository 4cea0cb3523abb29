"""The metric plug-in contract: everything the harness asks of a metric, declared on one
light class (importable without torch).

A metric is one module holding a :class:`Metric` subclass plus one config file
(``metric/<name>.yaml``: ``enabled`` and ``options``). Preflight, prefetch, the
estimates, the pipeline, the results model and the tables ask the registry
(:mod:`metrics`) for the class and read what it declares here; none of them names a
metric. Built-in metrics are listed in :data:`metrics.BUILTIN`; others are found through
the ``lcmbench.metrics`` entry-point group (see docs/architecture.md).

Two kinds:

- ``kind = "clip"``: the built object is a :class:`metrics.base.ClipMetric`; its
  per-clip features are computed as each clip is made and kept in the store, and a
  (method, NFE) cell is scored from them (FVD, CLIPSIM).
- ``kind = "set"``: the built object is a :class:`metrics.base.SetMetric`; it scores the
  stored frames of a set of clips at once after generation (VBench). Its results go to
  the results section named by ``section``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

from common.checks import AssetCheck, Checked, Problem
from common.errors import InputError
from common.files import sha256_file
from metrics.base import MetricFacts
from metrics.options import parse_options


@dataclass(frozen=True)
class RunFacts:
    """What a metric may know of the run it is part of (read from the composed config)."""
    experiment: str = ""
    weights: str = "tiny"                 # the run's weight mode: pretrained | random | tiny
    num_frames: int = 16
    height: int = 512
    width: int = 512
    nfes: Tuple[int, ...] = (1, 2, 4, 8)
    clips_per_cell: int = 0               # prompts x videos per prompt
    prompt_set: str = "classnames"
    subset: bool = False                  # protocol.classes or protocol.num_classes picks part of the prompt set
    videos_per_prompt: int = 1
    videos_by_dimension: Mapping[str, int] = field(default_factory=dict)   # a VBench dimension's video pool per prompt
    cache_dir: str = "~/.cache/lcmbench"
    allow_unsafe_pickle: bool = False
    urls: Mapping[str, str] = field(default_factory=dict)   # preflight.urls: download URLs the user gives
    verify_hashes: bool = False


@dataclass
class FileNeed:
    """A file a metric reads. Preflight checks it, prefetch fetches it (from ``url``, or the
    Hub files in ``hub``) into ``path`` and records it in the manifest under ``root``;
    without either, ``how`` is the manual step."""
    label: str                            # e.g. "FVD detector i3d_pretrained_400.pt"
    path: Optional[str]                   # where the metric loads it from (None: on the Hub only)
    setting: str                          # the config key that moves it, e.g. metrics.fvd.options.path
    root: str = "abs"                     # manifest root: lcmbench | vbench | torch_hub | abs
    url: Optional[str] = None
    sha256: Optional[str] = None
    how: str = ""                         # how to get it when there is no URL
    hub: Optional[Tuple[str, Tuple[Tuple[str, ...], ...], Optional[str], Tuple[str, ...]]] = None
    #     (repo, file groups (one of each group), revision, small files) for huggingface_hub
    required: bool = True                 # False: missing is a note (the metric skips that part)
    user_file: bool = False               # the user's own file: recorded, never replaced
    checked_by_metric: bool = False       # preflight leaves it to the metric's extra_checks (a file found in one
    #                                       of several places, or whose content is checked)


@dataclass
class Cost:
    """What one clip costs the metric, for the plan's estimates."""
    tflop_per_clip: float = 0.0           # device FLOPs (multiply-adds count 2) per generated clip
    features: Dict[str, Tuple[Tuple[int, ...], str]] = field(default_factory=dict)   # stored per clip: key -> (shape, dtype)
    export_bytes_per_clip: int = 0        # files written beside the store per scored clip (set metrics)
    resample_s: float = 0.0               # one bootstrap resample of one (method, NFE) cell of this run on 2 cores
    #                                       (0: negligible)


class Metric(MetricFacts):
    """A metric plug-in. Subclasses set the facts (:class:`MetricFacts`), ``kind``,
    ``options_schema`` (a :func:`metrics.options.options_schema` dataclass) and
    ``builder`` ("module:function" returning the built metric), and override the
    hooks they need."""

    kind: ClassVar[str] = "clip"          # clip | set
    options_schema: ClassVar[Optional[type]] = None
    builder: ClassVar[str] = ""
    section: ClassVar[Optional[str]] = None   # set metrics: the results section they fill
    packages: ClassVar[Tuple[str, ...]] = ()   # distributions whose versions go into provenance.packages
    config_dir: ClassVar[Optional[str]] = None   # installed plug-ins: the folder holding metric/<name>.yaml
    # options that build the metric offline in seconds (tiny or random weights), and options
    # differing in one setting that changes its feature key: the registry-wide contract test
    # (tests/test_metric_contract.py) builds every metric with them
    contract_options: ClassVar[Optional[Dict[str, Any]]] = None
    contract_variant: ClassVar[Optional[Dict[str, Any]]] = None

    # ------------------------------------------------------------ names
    @classmethod
    def row_metrics(cls) -> Tuple[str, ...]:
        """The ``metric`` names of the results rows this metric writes."""
        return (cls.name,)

    # ------------------------------------------------------------ options
    @classmethod
    def resolve_options(cls, options: Mapping[str, Any], run: RunFacts) -> Dict[str, Any]:
        """The builder's keyword arguments: the configured options with what the run decides
        (e.g. the clip length) filled in."""
        return dict(options)

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> Any:
        """``options`` checked against ``options_schema`` (one ValueError naming every bad key)."""
        if cls.options_schema is None:
            if options:
                raise InputError(f"{cls.name}: takes no options, got {', '.join(map(str, options))}.")
            return None
        return parse_options(cls.options_schema, options, cls.name)

    # ------------------------------------------------------------ what the harness checks and fetches
    @classmethod
    def cache_roots(cls) -> Dict[str, Tuple[str, Optional[str]]]:
        """The cache folders the metric's files live in, for the prefetch manifest: root name
        -> (its path here, the environment variable that moves it or None). A manifest
        records files relative to these roots, so the caches may move between machines."""
        return {}

    @classmethod
    def settings_problems(cls, options: Mapping[str, Any], run: RunFacts) -> List[str]:
        """Configuration mistakes found before anything is built (one sentence each, with the fix)."""
        return []

    @classmethod
    def files(cls, options: Mapping[str, Any], run: RunFacts) -> List[FileNeed]:
        """The files the metric reads with these options (for preflight and prefetch).
        Raises ValueError when an option value cannot say which files (preflight reports it
        as a problem, prefetch as a manual step)."""
        return []

    @classmethod
    def check(cls, options: Mapping[str, Any], run: RunFacts) -> Checked:
        """Preflight: the options parse, every file in :meth:`files` is there (and matches its
        sha256 when one is declared and ``run.verify_hashes``), plus :meth:`extra_checks`."""
        out = Checked()
        try:
            cls.parse(options)
            parsed = True
        except ValueError as err:
            parsed = False
            out.problems.append(Problem("metric", f"metrics.{cls.name}.options: {err}",
                                        f"Fix metrics.{cls.name}.options."))
        try:
            needs = cls.files(options, run)
        except ValueError as err:
            if parsed:   # else it is the parse error again, reported above
                out.problems.append(Problem("metric", f"metrics.{cls.name}: {err}", f"Fix metrics.{cls.name}.options."))
            needs = []
        for need in needs:
            if need.path is None or need.checked_by_metric:   # Hub files: preflight checks the Hub cache
                continue
            out.extend(check_file(need, run.verify_hashes))
        return out.extend(cls.extra_checks(options, run))

    @classmethod
    def extra_checks(cls, options: Mapping[str, Any], run: RunFacts) -> Checked:
        """Preflight checks beyond the declared files (what only the metric knows)."""
        return Checked()

    @classmethod
    def cost(cls, options: Mapping[str, Any], run: RunFacts) -> Cost:
        return Cost()

    # ------------------------------------------------------------ set metrics
    @classmethod
    def frames_nfe(cls, options: Mapping[str, Any], run: RunFacts) -> Optional[int]:
        """Set metrics: the step count whose clips keep their frames for scoring (None: none)."""
        return None


def check_file(need: FileNeed, verify: bool) -> Checked:
    """One declared file: present, and its sha256 as declared (always for a user's file or
    when ``verify``; a pinned digest of a large shipped file is checked only on ``verify``)."""
    out = Checked()
    path = os.path.expanduser(need.path or "")
    if not os.path.exists(path):
        out.assets.append(AssetCheck("metric", need.label, need.setting, "missing", path))
        fix = (f"`lcmbench prefetch` fetches it from {need.url}" if need.url else need.how) or \
            f"put it there or set {need.setting}"
        if need.required:
            out.problems.append(Problem("metric", f"{need.label} not found at {path}.", fix[0].upper() + fix[1:] + "."))
        else:
            out.notes.append(f"{need.label} not found at {path}: that part is skipped ({fix}).")
        return out
    if os.path.isdir(path):
        out.assets.append(AssetCheck("metric", need.label, need.setting, "ok", path))
        return out
    size = os.path.getsize(path)
    if need.sha256 and (verify or need.user_file):
        digest = sha256_file(path)
        if digest.lower() != need.sha256.lower():
            out.assets.append(AssetCheck("metric", need.label, need.setting, "corrupt", path, size, digest,
                                         f"expected {need.sha256}"))
            out.problems.append(Problem("metric", f"{path} has sha256 {digest}, expected {need.sha256}.",
                                        f"The file is corrupt or another release: fetch it again, or fix {need.setting}."))
            return out
        out.assets.append(AssetCheck("metric", need.label, need.setting, "ok", path, size, digest, "sha256 verified"))
        return out
    out.assets.append(AssetCheck("metric", need.label, need.setting, "ok", path, size))
    return out


def describe_plugins(plugins: Sequence[type]) -> str:
    """One line per metric plug-in: name, kind, display name, direction."""
    return "\n".join(f"  {p.name:<10} {p.kind:<4} {p.display_name} ({'higher' if p.higher_is_better else 'lower'} "
                     f"is better)" for p in plugins)
