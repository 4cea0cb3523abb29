"""Your own checkpoints as methods: the training runs of the distillation ablation
(decoupled vs joint), one method per (strategy, training step) found on disk.

    python run_bench.py experiment=ablation ablation.dir=PATH
    python run_bench.py experiment=ablation ablation.runs.decoupled=RUN_A ablation.runs.joint=RUN_B

A training run's folder holds one checkpoint per saved step, named ``checkpoint-<step>``
(accelerate's name, which the authors' training scripts use), ``step<step>`` or
``<step>``. Each checkpoint holds the motion module as a diffusers MotionAdapter folder
(``ablation.motion_adapter``, default ``motion_adapter/``) and the spatial LoRA file
(``ablation.lora``, default ``lora.safetensors``). Every checkpoint becomes the method
``<strategy>_<step>``: ``ablation.template`` (a model config: base, sampler, guidance,
LoRA scale, personalized base) with those two paths, marked as an ablation variant.

``expand(cfg)`` adds the complete checkpoints to ``cfg.methods`` and
``cfg.ablation.variants``; ``problems(cfg)`` names every missing folder and file, with
how to point the experiment at a folder, for preflight. Both read only the file system.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from omegaconf import open_dict

from bench.plan.config import AblationVariant, get, plain
from common.errors import InputError

STRATEGIES = ("decoupled", "joint")
STEP_DIR = re.compile(r"^(?:checkpoint|step)?[-_]?(\d+)$")
ADAPTER_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


@dataclass
class Checkpoint:
    strategy: str
    step: int
    folder: Path
    motion_adapter: Path
    lora: Optional[Path]

    @property
    def method(self) -> str:
        return f"{self.strategy}_{self.step}"


def _how(cfg: Any) -> str:
    a = cfg.ablation
    lora = f" and {a.lora}" if a.lora else ""
    return (f"Point the experiment at your checkpoints with ablation.dir=PATH (PATH/decoupled and PATH/joint, one "
            f"training run each) or ablation.runs.<strategy>=RUN; a run holds checkpoint-<step>/ folders, each with "
            f"{a.motion_adapter}/ (MotionAdapter.save_pretrained){lora} (README: 'Evaluate your own checkpoints').")


def wanted(cfg: Any) -> bool:
    """Whether the configuration asks for checkpoints from disk (ablation.dir or ablation.runs)."""
    a = get(cfg, "ablation")
    return a is not None and (get(a, "dir") is not None or len(get(a, "runs", {}) or {}) > 0)


def run_folders(cfg: Any) -> Dict[str, Optional[Path]]:
    """strategy -> its training run's folder (None: not set)."""
    a = cfg.ablation
    runs: Mapping[str, Any] = plain(get(a, "runs", {})) or {}
    base = Path(str(a.dir)).expanduser() if a.dir is not None else None
    names = list(dict.fromkeys([*runs, *(STRATEGIES if base is not None else ())]))
    return {s: Path(str(runs[s])).expanduser() if runs.get(s) else (base / s if base is not None else None)
            for s in names}


def _missing_files(ckpt: Checkpoint) -> List[str]:
    """Each path of a checkpoint that is missing, as a sentence naming it."""
    where = f"the {ckpt.strategy} checkpoint at step {ckpt.step:,}"
    out = []
    adapter = ckpt.motion_adapter
    if not adapter.is_dir():
        out.append(f"{adapter} does not exist ({where}: its motion module, a MotionAdapter folder).")
    else:
        if not (adapter / "config.json").is_file():
            out.append(f"{adapter / 'config.json'} does not exist ({where}).")
        if not any((adapter / w).is_file() for w in ADAPTER_WEIGHTS):
            out.append(f"{adapter / ADAPTER_WEIGHTS[0]} does not exist ({where}).")
    if ckpt.lora is not None and not ckpt.lora.is_file():
        out.append(f"{ckpt.lora} does not exist ({where}: its spatial LoRA file).")
    return out


def scan(cfg: Any) -> Tuple[List[Checkpoint], List[Tuple[str, str]]]:
    """The complete checkpoints (by strategy, then step) and, as (what, fix), every problem."""
    if not wanted(cfg):
        return [], []
    a, how = cfg.ablation, _how(cfg)
    steps = [int(s) for s in a.steps] if a.steps is not None else None
    found: List[Checkpoint] = []
    problems: List[Tuple[str, str]] = []
    folders_by = run_folders(cfg)
    if all(f is None for f in folders_by.values()):
        return [], [(f"experiment={get(cfg, 'experiment', '?')} evaluates your checkpoints, but neither ablation.dir "
                     f"nor ablation.runs.<strategy> is set.", how)]
    base = Path(str(a.dir)).expanduser() if a.dir is not None else None
    if base is not None and not base.is_dir() and all(not v for v in (plain(get(a, "runs", {})) or {}).values()):
        what = "is a file, not a folder" if base.exists() else "does not exist"
        return [], [(f"ablation.dir={a.dir} {what}.", how)]
    for strategy, folder in folders_by.items():
        if strategy not in STRATEGIES:
            problems.append((f"ablation.runs.{strategy}: the strategy must be one of {', '.join(STRATEGIES)}.",
                             "Name each training run by its strategy, e.g. ablation.runs.joint=PATH."))
            continue
        if folder is None:   # only the other strategy's run was given: evaluate that one
            continue
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            problems.append((f"the {strategy} training run folder {folder} {what}.", how))
            continue
        by_step: Dict[int, List[Path]] = {}
        for child in sorted(folder.iterdir()):
            m = STEP_DIR.match(child.name)
            if m and child.is_dir():
                by_step.setdefault(int(m.group(1)), []).append(child)
        if not by_step:
            problems.append((f"the {strategy} training run folder {folder} holds no checkpoint folders "
                             f"(checkpoint-<step>, step<step> or <step>).", how))
            continue
        for step, folders in sorted(by_step.items()):
            if len(folders) > 1:
                problems.append((f"{folder} holds {len(folders)} checkpoints of step {step:,} "
                                 f"({', '.join(f.name for f in folders)}).", "Keep one folder per training step."))
        if steps is not None:
            absent = [s for s in steps if s not in by_step]
            if absent:
                problems.append((f"the {strategy} training run {folder} has no checkpoint of step(s) "
                                 f"{', '.join(map(str, absent))} (it has {', '.join(map(str, sorted(by_step)))}).",
                                 "Fix ablation.steps, or leave it unset to evaluate every checkpoint found."))
        for step, folders in sorted(by_step.items()):
            if (steps is not None and step not in steps) or len(folders) > 1:
                continue
            ckpt = Checkpoint(strategy, step, folders[0], folders[0] / str(a.motion_adapter),
                              folders[0] / str(a.lora) if a.lora else None)
            missing = _missing_files(ckpt)
            problems += [(what, how) for what in missing]
            if not missing:
                found.append(ckpt)
    return found, problems


def problems(cfg: Any) -> List[Tuple[str, str]]:
    return scan(cfg)[1]


def expand(cfg: Any) -> List[str]:
    """Add a method and an ablation variant for every complete checkpoint (in place; a
    method of that name already in the configuration is kept). Returns the methods added."""
    added = []
    for ckpt in scan(cfg)[0]:
        if ckpt.method in cfg.methods:
            continue
        spec = copy.deepcopy(cfg.ablation.template)   # a typed ModelSpec node
        spec.motion_adapter = str(ckpt.motion_adapter)
        spec.display_name = f"{ckpt.strategy.capitalize()}, step {ckpt.step:,}"
        if ckpt.lora is not None:
            spec.lora, spec.lora_file = str(ckpt.lora), None
        with open_dict(cfg):   # Hydra's configs are in struct mode: new keys are added on purpose here
            cfg.methods[ckpt.method] = spec
            cfg.ablation.variants[ckpt.method] = AblationVariant(ckpt.strategy, ckpt.step)
        added.append(ckpt.method)
    return added


def equal_step_pairs(variants: Mapping[str, Any]) -> Dict[str, str]:
    """joint method -> the decoupled method of the same training step: the pairs whose
    paired difference (same prompts and seeds) the ablation table shows."""
    decoupled = {get(v, "train_step"): m for m, v in variants.items()
                 if get(v, "distillation") == "decoupled" and get(v, "train_step") is not None}
    return {m: decoupled[get(v, "train_step")] for m, v in variants.items()
            if get(v, "distillation") == "joint" and get(v, "train_step") in decoupled}


def ablation_section(variants: Mapping[str, Any], methods: Mapping[str, Any],
                     rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The results' ablation section: each variant is one method of the run, scored under
    the same protocol and seeds."""
    unknown = [name for name in variants if name not in methods]
    if unknown:
        raise InputError(f"ablation.variants lists {unknown}, which are not methods of this experiment.")
    out = []
    for name, variant in variants.items():
        if variant.distillation not in STRATEGIES:
            raise InputError(f"ablation.variants.{name}.distillation must be decoupled or joint, "
                             f"got '{variant.distillation}'.")
        out.append({"variant": name, "train_step": variant.train_step, "distillation": variant.distillation,
                    "rows": [r for r in rows if r["method"] == name]})
    return out
