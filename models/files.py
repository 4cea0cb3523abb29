"""The files each method's weights are read from, declared beside the loaders that read
them (``models/animatediff.py``, ``models/successors.py``, ``models/lora.py``).

``method_files(name, spec, nfes)`` lists, for one resolved ``ModelSpec`` in pretrained
mode, every Hub repo or local path with the files ``from_pretrained`` /
``from_single_file`` / the LoRA and motion-file loaders open there. Preflight checks
exactly this list and prefetch fetches exactly this list (``bench/preflight/assets.py``), so a
loader change is one edit here. Tiny and random weights are built from config; the
local paths a user writes are still checked in those modes (``local_files``): tiny runs
read them, random runs (timing) only need them to exist.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from models.specs import ModelSpec, step_specific
from models.weights import looks_local

Group = Tuple[str, ...]   # alternatives for one file; the first is the one the loader prefers


def _component(sub: str, weights: Group = ("diffusion_pytorch_model.safetensors",
                                           "diffusion_pytorch_model.bin")) -> List[Group]:
    prefix = f"{sub}/" if sub else ""
    return [(prefix + "config.json",), tuple(prefix + w for w in weights)]


_TEXT_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
# build_pipeline: UNet, VAE, text encoder and tokenizer of the SD1.5 base
BASE_FILES = (_component("unet") + _component("vae") + _component("text_encoder", _TEXT_WEIGHTS)
              + [("tokenizer/vocab.json",), ("tokenizer/merges.txt",), ("tokenizer/tokenizer_config.json",)])
# MotionAdapter.from_pretrained(motion_adapter)
ADAPTER_FILES = _component("")
# a personalized diffusers folder: its UNet and text encoder (its VAE when personalized_vae)
PERSONALIZED_FILES = _component("unet") + _component("text_encoder", _TEXT_WEIGHTS)
# StableDiffusionPipeline.from_single_file(config=base) reads the base's pipeline configs
SINGLE_FILE_CONFIG_FILES = [("model_index.json",), ("scheduler/scheduler_config.json",)]
# small files prefetch takes along with the chosen weights (configs, tokenizer)
BASE_SMALL = ("*.json", "tokenizer/*")


@dataclass
class FileNeed:
    ref: str                   # Hub id or local path
    groups: List[Group]        # files inside it; empty for a single local file
    field: str                 # the config field that names it, e.g. methods.animatelcm.base
    revision: Optional[str] = None
    small: Tuple[str, ...] = ()


@dataclass
class FileProblem:
    area: str
    what: str
    fix: str


def method_files(name: str, spec: ModelSpec, nfes: Sequence[int],
                 allow_unsafe_pickle: bool = False) -> Tuple[List[FileNeed], List[FileProblem]]:
    """The files method ``name`` reads in pretrained mode, and what is wrong with its spec
    (``allow_unsafe_pickle``: runner.allow_unsafe_pickle, which admits a pickle .ckpt)."""
    at, rev = f"methods.{name}", spec.revision
    needs = [FileNeed(spec.base, BASE_FILES, f"{at}.base", rev, BASE_SMALL)]
    problems: List[FileProblem] = []
    if spec.motion_adapter_file:   # a MotionAdapter state dict, one per step count with {nfe}
        files = sorted({spec.motion_adapter_file.format(nfe=k) for k in nfes}
                       if step_specific(spec) else {spec.motion_adapter_file})
        needs.append(FileNeed(spec.motion_adapter, [(f,) for f in files], f"{at}.motion_adapter_file", rev))
    else:
        needs.append(FileNeed(spec.motion_adapter, ADAPTER_FILES, f"{at}.motion_adapter", rev, ("config.json",)))
    if spec.lora not in (None, "none") and spec.lora_scale and spec.lora_convention == "peft":
        sub = spec.lora_file   # a PEFT adapter folder (MCM)
        needs.append(FileNeed(spec.lora, [(f"{sub}/adapter_config.json",),
                                          (f"{sub}/adapter_model.safetensors", f"{sub}/adapter_model.bin")],
                              f"{at}.lora", rev))
    elif spec.lora not in (None, "none") and spec.lora_scale:
        if Path(spec.lora).expanduser().is_file():
            needs.append(FileNeed(spec.lora, [], f"{at}.lora", rev))
        elif not spec.lora_file:
            problems.append(FileProblem("config", f"{at}.lora='{spec.lora}' names a repo or folder but "
                                                  f"{at}.lora_file is empty.",
                                        f"Set {at}.lora_file to the LoRA file name inside it."))
        else:
            needs.append(FileNeed(spec.lora, [(spec.lora_file,)], f"{at}.lora", rev))
    if spec.personalized and spec.personalized_alpha:
        ref = spec.personalized
        if not ref.endswith((".safetensors", ".ckpt")):
            needs.append(FileNeed(ref, PERSONALIZED_FILES, f"{at}.personalized", rev, ("model_index.json",)))
        elif not looks_local(ref):
            problems.append(FileProblem("config", f"{at}.personalized='{ref}' is a single-file checkpoint but "
                                                  f"not a local path.",
                                        f"Download the file and set {at}.personalized to its local path."))
        elif ref.endswith(".ckpt") and not allow_unsafe_pickle:
            problems.append(FileProblem("weights", f"{at}.personalized='{ref}' is a pickle .ckpt, which the "
                                                   f"harness refuses to load.",
                                        "Convert it to .safetensors (e.g. with diffusers' conversion scripts) "
                                        "and point at that, or if you trust its source set "
                                        "runner.allow_unsafe_pickle=true."))
        else:
            needs.append(FileNeed(ref, [], f"{at}.personalized", rev))
            needs.append(FileNeed(spec.base, SINGLE_FILE_CONFIG_FILES, f"{at}.base (config of the single file)",
                                  rev))
    return needs, problems


def local_files(name: str, spec: ModelSpec, weights: str, nfes: Sequence[int],
                allow_unsafe_pickle: bool = False) -> Tuple[List[FileNeed], List[FileProblem]]:
    """The local paths method ``name`` names, for tiny and random weights: a path the user
    wrote must exist in every weight mode. Tiny runs read the motion module, LoRA and
    personalized base found there (saved from the tiny architecture), so their files are
    checked as in pretrained mode; everything else only has to exist."""
    needs, problems = method_files(name, spec, nfes, allow_unsafe_pickle)
    at = f"methods.{name}"
    read_by_tiny = {f"{at}.motion_adapter", f"{at}.motion_adapter_file", f"{at}.lora", f"{at}.personalized"}
    out = []
    for need in needs:
        if not looks_local(need.ref):
            continue
        if weights != "tiny" or need.field not in read_by_tiny:
            need = FileNeed(need.ref, [], need.field)
        out.append(need)
    ref = spec.personalized or ""
    if weights == "tiny" and spec.personalized_alpha and looks_local(ref) and ref.endswith((".safetensors", ".ckpt")):
        return out, [FileProblem("config", f"{at}.personalized='{ref}' is a single file, which tiny weights do not "
                                           f"read (they read a diffusers folder saved from the tiny components).",
                                 f"Use weights=pretrained for a full-size checkpoint, or point {at}.personalized "
                                 f"at a tiny diffusers folder.")]
    return out, []
