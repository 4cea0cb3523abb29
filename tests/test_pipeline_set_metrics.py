"""The pipeline runs any set metric through the plug-in hooks alone: the clips of the step
count its ``frames_nfe`` names keep their frames, its ``score_videos`` gets each method's
(prompt, video index, frames) and fills the results section its plug-in names, and its
``describe`` and ``parity`` go into the provenance. A toy set metric, registered in-process,
stands for VBench."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import open_dict

import metrics
from bench.generate.runner import MetricSetupError
from bench.plan.config import MetricConfig
from bench.run.pipeline import Run, make_plans
from metrics.base import MetricFailed, SetMetric
from metrics.plugin import Metric
from tests.conftest import compose
from tests.test_bad_input import BASE

class ToySet(Metric):
    name = "toyset"
    display_name = "Toy Set"
    kind = "set"
    section = "toy_section"
    builder = "tests.test_pipeline_set_metrics:build"

    @classmethod
    def frames_nfe(cls, options, run):
        return int(options.get("nfe", max(run.nfes)))


class ToySetMetric(ToySet, SetMetric):
    def __init__(self, fail: bool):
        self.fail = fail
        self.calls = []

    def describe(self):
        return {"name": self.name, "version": "7", "id": "toyset-v7"}

    def parity(self):
        return {"toyset_choice": "mean brightness"}

    def score_videos(self, videos, nfe, work_dir):
        self.calls.append((dict(videos), nfe, Path(work_dir)))
        if self.fail:
            raise MetricFailed("toyset failed for a reason the user fixes.")
        return {m: {"n": len(items), "brightness": float(np.mean([f.mean() for _, _, f in items]))}
                for m, items in videos.items()}


def build(device="cpu", nfe=None, fail=False):
    return ToySetMetric(fail)


@pytest.fixture
def toyset(monkeypatch):
    monkeypatch.setitem(metrics.BUILTIN, "toyset", "tests.test_pipeline_set_metrics:ToySet")
    metrics.refresh()
    yield
    monkeypatch.delitem(metrics.BUILTIN, "toyset")
    metrics.refresh()


def _cfg(enabled=True, **options):
    cfg = compose([*BASE, "protocol.nfe=[1,2]", "runner.samples_per_cell=0"])
    with open_dict(cfg):   # as a metric/toyset.yaml in the experiment's defaults would
        cfg.metrics.toyset = MetricConfig(enabled=enabled, options={"nfe": 2, **options})
    return cfg


def test_a_set_metric_keeps_the_frames_of_its_step_count_only(toyset):
    from bench.plan.prompts import load_prompt_set

    cfg = _cfg()
    plans = make_plans(cfg, load_prompt_set("classnames").subset(None, 1))
    kept = {(c.nfe, c.keep_frames) for p in plans for c in p.clips}
    assert kept == {(1, False), (2, True)}
    assert all(not c.keep_frames for p in make_plans(_cfg(enabled=False),
                                                     load_prompt_set("classnames").subset(None, 1))
               for c in p.clips)


def test_a_set_metric_is_scored_into_its_section_with_its_provenance(toyset, tmp_path):
    run = Run(_cfg(), tmp_path / "run")
    run.preflight()
    run.generate()
    scored = run.score()
    ((_, metric, _),) = run.set_metrics
    ((videos, nfe, work_dir),) = metric.calls   # one method
    assert nfe == 2 and work_dir == tmp_path / "run" / "toy_section"
    (items,) = videos.values()
    assert [(prompt, index) for prompt, index, _ in items] == [(c.prompt, c.video_index) for c in run.plans[0].clips
                                                               if c.nfe == 2]
    assert all(f.dtype == np.uint8 and f.shape == (9, 64, 64, 3) for _, _, f in items)
    assert scored["toy_section"] == {run.plans[0].name: {"n": 2, "brightness": pytest.approx(
        float(np.mean([f.mean() for _, _, f in items])))}}
    assert run.protocols()["toyset"] == {"name": "toyset", "version": "7", "id": "toyset-v7"}
    assert run.parity()["toyset_choice"] == "mean brightness"


def test_a_failing_set_metric_stops_the_score_stage_and_keeps_the_clips(toyset, tmp_path):
    run = Run(_cfg(fail=True), tmp_path / "run")
    run.preflight()
    run.generate()
    with pytest.raises(MetricSetupError, match="^toyset failed for a reason the user fixes. Nothing was scored; the "
                                               f"clips are kept in {tmp_path / 'run' / 'store'}: rerun with "
                                               r"stages=\[score,report\]"):
        run.score()
    assert len(run.store.keys()) == 4
