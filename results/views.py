"""Flat views of a results file: one record per (method, nfe, metric), VBench summaries
and dimensions included (percent), as dicts, pandas data frames and CSV."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Union

from common.files import write_atomic
from metrics import facts as metric_facts
from metrics.vbench_plugin import VBench
from metrics.vbench_protocol import SUMMARIES
from results.model import Results, protocol_id
from results.schema import as_results

PathLike = Union[str, "os.PathLike[str]"]
_DF_COLUMNS = ["method", "display_name", "nfe", "metric", "value", "ci_low", "ci_high", "ci_half_width",
               "n", "protocol", "higher_is_better", "source", "weights_mode", "experiment"]


def flat_rows(res: Results) -> List[Dict[str, Any]]:
    """Rows plus VBench summaries and dimensions (percent) as flat dicts, one per (method, nfe, metric)."""
    out = []
    have = {r.key for r in res.rows}
    for r in res.rows:
        out.append({"method": r.method, "display_name": res.display_name(r.method), "nfe": r.nfe,
                    "metric": r.metric, "value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high,
                    "ci_half_width": r.ci_half_width, "n": r.n, "protocol": r.protocol,
                    "higher_is_better": metric_facts(r.metric).higher_is_better, "source": "rows"})
    # VBench summaries live in their own section; expose them as rows too (percent).
    vproto = res.provenance.protocols.get(VBench.name)
    for mid, e in res.vbench.items():
        if e.nfe is None:
            continue
        cells = [(f"vbench_{s}", getattr(e, s)) for s in SUMMARIES]
        cells += [(f"vbench_{dim}", 100.0 * v) for dim, v in e.scores.items()]
        for metric, v in cells:
            if v is None or (mid, e.nfe, metric) in have:
                continue
            out.append({"method": mid, "display_name": res.display_name(mid), "nfe": e.nfe, "metric": metric,
                        "value": float(v), "ci_low": None, "ci_high": None, "ci_half_width": None,
                        "n": e.n_videos, "protocol": protocol_id(vproto) if vproto else None,
                        "higher_is_better": metric_facts(metric).higher_is_better, "source": VBench.section})
    for o in out:
        o["weights_mode"] = res.weights_mode
        o["experiment"] = res.run.experiment
    return out


def to_dataframe(results: Union[Results, Mapping[str, Any]]):
    """One row per (method, nfe, metric), including VBench summaries and dimensions (percent)."""
    import pandas as pd  # heavy: only for data frames

    res = as_results(results)
    df = pd.DataFrame(flat_rows(res), columns=_DF_COLUMNS)
    order = {m: i for i, m in enumerate(res.method_order())}
    if len(df):
        df = df.sort_values(by=["metric", "method", "nfe"], key=lambda s: s.map(order) if s.name == "method" else s,
                            kind="stable").reset_index(drop=True)
    return df


def ablation_dataframe(results: Union[Results, Mapping[str, Any]]):
    """One row per (variant, method, nfe, metric) of the ablation section (empty if none)."""
    import pandas as pd  # heavy: only for data frames

    res = as_results(results)
    recs = []
    for a in res.ablation or []:
        for r in a.rows:
            recs.append({"variant": a.variant, "distillation": a.distillation, "train_step": a.train_step,
                         "method": r.method, "nfe": r.nfe, "metric": r.metric, "value": r.value,
                         "ci_low": r.ci_low, "ci_high": r.ci_high, "n": r.n, "protocol": r.protocol})
    return pd.DataFrame(recs, columns=["variant", "distillation", "train_step", "method", "nfe", "metric",
                                       "value", "ci_low", "ci_high", "n", "protocol"])


def write_csv(path: PathLike, results: Union[Results, Mapping[str, Any]]) -> Path:
    """Write :func:`to_dataframe` as CSV (atomically)."""
    df = to_dataframe(results)
    return write_atomic(path, df.to_csv(index=False, lineterminator="\n"))
