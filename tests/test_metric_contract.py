"""Every registered metric meets the plug-in contract (the torchmetrics habit of one tester
run over every metric): its facts are present and well-formed, its declarations answer for
default options, and, built from its ``contract_options`` (tiny, random or packaged
weights, offline), it extracts one feature row per clip independent of the batch, scores
independently of the clips' order, keys its features by its options, and describes itself
in a form the results file takes."""
from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

import metrics
from common.checks import Checked
from metrics.plugin import Cost, FileNeed, RunFacts

NAMES = metrics.available()
CLIP = [n for n in NAMES if metrics.plugin(n).kind == "clip"]
SET = [n for n in NAMES if metrics.plugin(n).kind == "set"]
FRAMES = 16


def run_facts(cache_dir) -> RunFacts:
    return RunFacts(experiment="contract", weights="tiny", num_frames=FRAMES, height=64, width=64, nfes=(1,),
                    clips_per_cell=4, cache_dir=str(cache_dir))


def clips(n: int, seed: int = 0) -> np.ndarray:
    """Smooth moving blobs rather than white noise: detectors see structure, as in real clips."""
    rng = np.random.default_rng(seed)
    t, y, x = np.meshgrid(np.arange(FRAMES), np.arange(64), np.arange(64), indexing="ij")
    out = []
    for _ in range(n):
        cx, cy, vx, r = rng.uniform(10, 54), rng.uniform(10, 54), rng.uniform(-2, 2), rng.uniform(6, 16)
        blob = ((x - cx - vx * t) ** 2 + (y - cy) ** 2 < r ** 2)[..., None] * rng.uniform(60, 255, 3)
        out.append(np.clip(blob + rng.normal(0, 8, blob.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("metric-contract-cache")


@pytest.mark.parametrize("name", NAMES)
def test_facts_and_declarations(name, tmp_path):
    plugin = metrics.plugin(name)
    assert plugin.name == name and plugin.display_name
    assert isinstance(plugin.higher_is_better, bool)
    assert isinstance(plugin.decimals, int) and 0 <= plugin.decimals <= 6
    kind, amount = plugin.tolerance
    assert kind in ("rel", "abs") and amount >= 0
    assert plugin.kind in ("clip", "set") and (plugin.kind == "clip" or plugin.section)
    module, attr = plugin.builder.split(":")
    assert callable(getattr(importlib.import_module(module), attr))
    rows = plugin.row_metrics()
    assert rows and all(metrics.family(r) == name and metrics.display(r) for r in rows)
    assert plugin.contract_options is not None, f"{name} declares no contract_options to build it in a test"
    plugin.parse(plugin.contract_options)   # the contract options are valid options
    run = run_facts(tmp_path)
    options = dict(plugin.contract_options)
    assert all(isinstance(f, FileNeed) and f.label and f.setting for f in plugin.files(options, run))
    assert isinstance(plugin.cost(options, run), Cost)
    assert isinstance(plugin.check(options, run), Checked)
    assert all(isinstance(p, str) and p for p in plugin.settings_problems(options, run))
    with pytest.raises(ValueError, match=name):
        plugin.parse({"no_such_option_anywhere": 1})


def build(name: str, options, cache_dir):
    plugin = metrics.plugin(name)
    return metrics.build(name, device="cpu", **plugin.resolve_options(dict(options), run_facts(cache_dir)))


@pytest.mark.parametrize("name", CLIP)
def test_clip_metric_contract(name, cache_dir):
    plugin = metrics.plugin(name)
    metric = build(name, plugin.contract_options, cache_dir)
    metric.prepare(str(cache_dir))
    frames = clips(4)
    prompts = ["a red ball", "a person walking", "a dog running", "waves on a beach"]

    features = np.asarray(metric.extract(frames, prompts))
    assert features.shape[0] == 4 and np.isfinite(features).all()
    order = [2, 0, 3, 1]
    again = np.asarray(metric.extract(frames[order], [prompts[i] for i in order]))
    np.testing.assert_allclose(again, features[order], rtol=1e-4, atol=1e-4)   # a clip's features are its own

    result = metric.score(features, prompts)
    shuffled = metric.score(features[order], [prompts[i] for i in order])
    if "skip" in result:
        assert "skip" in shuffled and result["skip"]
    else:
        assert np.isfinite(result["value"]) and result["n"] == 4
        assert shuffled["value"] == pytest.approx(result["value"], rel=1e-9, abs=1e-9)
    per_clip = metric.per_clip(features)
    assert per_clip is None or len(per_clip) == 4

    assert metric.name == name and metric.feature_key
    variant = build(name, plugin.contract_variant, cache_dir)
    assert variant.feature_key != metric.feature_key   # other options, other stored features
    description = metric.describe()
    assert json.loads(json.dumps(description)) == description   # goes into results.json as it is
    assert isinstance(metric.parity(), dict)


@pytest.mark.parametrize("name", SET)
def test_set_metric_contract(name, tmp_path):
    plugin = metrics.plugin(name)
    metric = build(name, plugin.contract_options, tmp_path)
    frames = clips(2, seed=3)
    items = [("a red ball", 0, frames[0]), ("a person walking", 0, frames[1])]
    scored = metric.score_videos({"a": items, "b": items[::-1]}, 1, tmp_path / "work")
    assert set(scored) == {"a", "b"}
    assert json.loads(json.dumps(scored["a"])) == scored["a"]
    assert scored["a"] == {**scored["b"]}   # the same clips in another order score the same
    description = metric.describe()
    assert description["name"] and description["version"] and description["id"]
    assert json.loads(json.dumps(description)) == description
