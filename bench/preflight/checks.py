"""Preflight's check of the prompt set: the file (with its sha256), its parse, and the
protocol's classes in it. The metrics check their own files and settings
(:meth:`metrics.plugin.Metric.check`)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from bench.plan.config import get
from bench.plan.metric_settings import enabled_metrics
from bench.plan.prompts import (OFFICIAL_CAPTIONS_SHA256, OFFICIAL_CAPTIONS_URL, PROMPT_SETS, classname_captions,
                                parse_caption_file, vbench_prompt_set)
from bench.preflight.report import AssetCheck, PreflightReport, Problem
from common.paths import not_a
from metrics.vbench_plugin import VBench
from metrics.vbench_protocol import STANDARD_PROMPT_SET


def check_prompts(cfg: Any, report: PreflightReport):
    """The prompt set (with its sha256); returns the PromptSet restricted to the
    protocol's classes (class-name captions stand in for counting when the file is missing)."""
    p = cfg.protocol
    name = get(p, "prompt_set", "classnames")
    prompt_file = get(p, "prompt_file")
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
            report.problems.append(Problem("prompts", f"{label} {not_a(file, 'file')}.", fix))
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
    elif name == STANDARD_PROMPT_SET:
        # the prompts the enabled VBench's dimensions read (all of them when it is off)
        options = enabled_metrics(cfg, unknown=[]).get(VBench.name)
        dims = None
        if options is not None:
            try:
                dims = list(VBench.parse(options).dimensions) or None
            except ValueError:
                pass   # the metric's own check reports its options
        try:
            full = vbench_prompt_set(dims)
            report.assets.append(AssetCheck("prompts", f"prompt set '{STANDARD_PROMPT_SET}'", "VBench_full_info.json",
                                            "ok", sha256=full.sha256,
                                            detail=f"{len(full.classes)} standard prompts read by the listed "
                                                   f"dimensions"))
        except (ImportError, OSError, ValueError) as err:
            report.problems.append(Problem("prompts", f"VBench's standard prompts: {err}",
                                           "Install vbench==0.1.5 with --no-deps (`make install` does) and "
                                           f"check metrics.{VBench.name}.options.dimensions."))
    else:
        report.problems.append(Problem("prompts", f"Unknown protocol.prompt_set '{name}'.",
                                       f"Use one of {', '.join(PROMPT_SETS)}."))
    counting = full or classname_captions()
    classes = list(get(p, "classes", []) or []) or None
    try:
        subset = counting.subset(classes, get(p, "num_classes"))
    except ValueError as err:
        report.problems.append(Problem("prompts", str(err), "Fix protocol.classes / protocol.num_classes."))
        subset = counting
    if full is not None:
        report.prompt_set = {"name": full.name, "sha256": full.sha256, "classes": len(subset.classes)}
        if name == "classnames":
            report.assets.append(AssetCheck("prompts", "prompt set 'classnames'", "built in", "ok",
                                            sha256=full.sha256, detail="generated from the class names"))
    return subset
