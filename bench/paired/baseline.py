"""A regression baseline: a finished run's ``results.json`` and the per-clip features of
every cell, committed together so a later run can be compared with it clip by clip.

    <name>.json            the baseline run's results.json (per-clip metrics such as CLIPSIM
                           keep their per-clip values in its rows: ``extra.per_clip``)
    <name>.features.npz    for every clip of every cell: its stored features under the feature
                           key of each set statistic (rows without per-clip values, e.g. FVD's
                           I3D features, float32) and the inputs it was made from (noise seed,
                           prompt, negative prompt)

:func:`write_baseline` makes both from a run folder (``bench.regression --make-baseline``);
:class:`Baseline` reads them and answers the same questions a run folder does
(``bench.paired.differences.RunFiles``), so the paired comparison treats the two alike.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Tuple

import numpy as np

from common.errors import LcmbenchError
from common.files import write_atomic
from results.model import Results
from results.registry import is_set_statistic
from results.schema import load, save

from bench.generate.store import ClipStore

FORMAT = "lcmbench-baseline-features-1"
INPUT_KEYS = ("seed", "prompt", "negative_prompt")   # what makes two clips with one key the same clip


class BaselineError(LcmbenchError, ValueError):
    """A baseline that cannot be read or made (says which file and what to do)."""


def features_path(json_path: Path) -> Path:
    """``regression.json`` -> ``regression.features.npz`` (the two live side by side)."""
    json_path = Path(json_path)
    return json_path.with_name(json_path.stem + ".features.npz")


def set_statistic_feature_keys(results: Results) -> List[str]:
    """The feature keys of the rows only the stored features can pair (set statistics)."""
    return sorted({r.protocol for r in results.rows if is_set_statistic(r)})


def cell_prefixes(results: Results) -> List[str]:
    return sorted({f"{r.method}/nfe{r.nfe}/" for r in results.rows})


def clip_inputs(meta: Mapping[str, object]) -> Dict[str, object]:
    return {k: meta.get(k) for k in INPUT_KEYS}


def write_baseline(run_dir: Path, out_json: Path) -> Tuple[Path, Path]:
    """Copy ``run_dir``'s results.json to ``out_json`` and the set statistics' features and
    the inputs of every clip its rows were scored on to ``<stem>.features.npz``. Returns
    both paths."""
    run_dir, out_json = Path(run_dir), Path(out_json)
    if not (run_dir / "results.json").is_file() or not (run_dir / "store").is_dir():
        raise BaselineError(f"{run_dir} is not a finished run folder (it needs results.json and store/): give "
                            f"the hydra.run.dir of a scored run.")
    results = load(run_dir / "results.json")
    store = ClipStore(run_dir / "store")
    prefixes = tuple(cell_prefixes(results))
    keys = sorted(k for k in store.keys() if k.startswith(prefixes))
    records = store.read_many(keys)
    feature_keys = set_statistic_feature_keys(results)
    arrays: Dict[str, np.ndarray] = {}
    for i, fk in enumerate(feature_keys):
        have = [k for k in keys if k in records and fk in records[k].features and records[k].meta.get("finite", True)]
        arrays[f"keys_{i}"] = np.array(have)
        arrays[f"features_{i}"] = np.stack([np.asarray(records[k].features[fk], dtype=np.float32) for k in have])
    meta = {"format": FORMAT, "feature_keys": feature_keys,
            "inputs": {k: clip_inputs(records[k].meta) for k in keys if k in records}}
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    save(out_json, results)
    npz = features_path(out_json)
    write_atomic(npz, buf.getvalue())
    return out_json, npz


class Baseline:
    """A committed baseline, read back: ``results``, per-clip features and inputs."""

    def __init__(self, json_path: Path):
        self.path = Path(json_path)
        if self.path.is_dir():
            raise BaselineError(f"{self.path} is a folder: give the baseline's .json file (its features are read "
                                f"from {features_path(self.path / 'NAME.json').name} beside it).")
        self.results = load(self.path)
        npz = features_path(self.path)
        if not npz.is_file():
            raise BaselineError(f"{npz} is missing: a baseline is the results file and the per-clip features "
                                f"beside it. Make both with python -m bench.regression --make-baseline "
                                f"{self.path} (see results/baselines/README.md).")
        try:
            with np.load(npz, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format") != FORMAT:
                    raise BaselineError(f"{npz} is not a {FORMAT} file (format {meta.get('format')!r}).")
                self._features = {fk: dict(zip((str(k) for k in z[f"keys_{i}"]), z[f"features_{i}"]))
                                  for i, fk in enumerate(meta["feature_keys"])}
        except (OSError, ValueError, KeyError) as err:
            if isinstance(err, BaselineError):
                raise
            raise BaselineError(f"cannot read {npz} ({type(err).__name__}: {err}); make it again with "
                                f"python -m bench.regression --make-baseline.") from None
        self._inputs: Dict[str, Dict[str, object]] = meta["inputs"]
        self.keys: List[str] = sorted(self._inputs)

    def features(self, method: str, nfe: int, feature_key: str) -> Dict[str, np.ndarray]:
        prefix = f"{method}/nfe{nfe}/"
        return {k: np.asarray(v, dtype=np.float64) for k, v in self._features.get(feature_key, {}).items()
                if k.startswith(prefix)}

    def inputs(self, keys: Iterable[str]) -> Dict[str, Dict[str, object]]:
        return {k: self._inputs[k] for k in keys if k in self._inputs}
