"""The run report: one self-contained HTML page, and every artefact of a run.

:func:`write_all` is what the pipeline calls at the end of a run. It writes,
under ``run_dir``::

    results.json          the validated results (schema in results/SCHEMA.md)
    results.csv           one row per (method, nfe, metric)
    tables/table1.{md,tex}            always
    tables/table1_extended.{md,tex}   always: every per-clip metric of the run
    tables/table2.{md,tex}            when VBench results exist
    tables/time_table.{md,tex}        when timing results exist
    tables/ablation.{md,tex}          when an ablation section exists
    plots/<name>.{png,pdf}            every figure the results support
    report.html           the page below

:func:`write_report` writes only ``report.html``: the weights-mode banner,
Table 1, the extended Table 1 and every reported metric's facts, Table 2,
the time and ablation tables, every figure (base64 PNG), a few sample videos
per (method, NFE) cell (animated WebP, GIF or MP4 as data URIs, within a size
budget) and the provenance (git, config, packages, device, protocols, seeds). No external resources: it opens offline.
"""
from __future__ import annotations

import base64
import html
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from common.errors import InputError, MissingInput
from common.files import write_atomic

from results import paper
from metrics import display as metric_display
from metrics import is_known as is_known_metric

from results.leaderboard import build_leaderboard_table, has_leaderboard, leaderboard_metrics
from results.metric_tables import build_metrics_table, build_table1_extended
from results.model import SCHEMA_VERSION, Results, protocol_id
from results.plots import figures, save_figure
from results.registry import clip_row_metrics
from results.schema import as_results, save, validate
from results.table_render import Table, render, to_html
from results.tables import build_ablation_table, build_table1, build_table2, build_time_table
from results.views import write_csv

PathLike = Union[str, Path]
SampleValue = Union[np.ndarray, str, Path, Sequence[Any]]

MAX_MEDIA_BYTES = 12 * 2**20     # budget for all embedded sample videos
MAX_VIDEO_BYTES = 2 * 2**20      # one embedded file (mp4, webp, gif)
VIDEOS_PER_CELL = 2
ANIM_MAX_SIDE = 160
ANIM_MAX_FRAMES = 16
ANIM_FPS = 8

_CSS = """
:root { --fg:#1d2330; --muted:#5f6b7a; --line:#dde2ea; --bg:#ffffff; --soft:#f5f7fa; --accent:#d62728; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--fg); background:var(--bg); }
main { max-width: 1480px; margin: 0 auto; padding: 0 24px 48px; }
header.top { padding: 22px 24px 10px; max-width:1480px; margin:0 auto; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 18px 0 6px; }
.meta { color: var(--muted); font-size: 13px; }
.banner { margin: 12px auto 0; max-width:1480px; padding: 12px 18px; border-radius: 6px; font-weight: 700;
          letter-spacing: .2px; }
.banner.warn { background:#fde8ea; color:#8a0015; border:1px solid #f3b6bf; }
.banner.ok { background:#e8f6ec; color:#14532d; border:1px solid #b5e0c0; }
nav { margin: 14px 0 0; font-size: 13px; }
nav a { color:#1f5fbf; text-decoration:none; margin-right: 14px; }
figure.table { margin: 0 0 8px; overflow-x: auto; }
figure.table figcaption { font-weight: 600; margin-bottom: 6px; }
.label-line { color:#8a0015; font-weight:700; font-size:12px; margin-bottom:6px; }
table.results { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 13px; }
table.results th, table.results td { padding: 5px 10px; border-bottom: 1px solid var(--line); white-space: nowrap; }
table.results thead th { border-bottom: 2px solid var(--fg); font-weight: 600; }
table.results th.group { border-bottom: 1px solid var(--fg); text-align:center; }
table.results .num { text-align: right; }
table.results .stub { text-align: left; }
table.results .center { text-align: center; }
table.results tr.paper td { color: var(--muted); font-style: italic; font-size: 12px; }
table.results tr.published td { color: #39424e; }
table.results td.best { font-weight: 700; }
table.results td.missing { color: #9aa3ad; }
table.results .ci { display: block; font-size: 11px; color: var(--muted); white-space: normal; }
table.results td.best .ci { font-weight: 400; }
table.results tbody tr:hover td { background: var(--soft); }
ul.notes { color: var(--muted); font-size: 12px; margin: 6px 0 0; padding-left: 18px; }
.plots { display:grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 18px; }
.plots figure { margin:0; border:1px solid var(--line); border-radius:6px; padding:8px; background:#fff; }
.plots figure.wide { grid-column: 1 / -1; }
.plots img { width:100%; height:auto; display:block; }
.plots figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
table.samples { border-collapse: collapse; }
table.samples th { font-weight:600; padding: 4px 8px; }
table.samples td { padding: 4px; vertical-align: top; border: 1px solid var(--line); }
table.samples img, table.samples video { width: 132px; height: auto; display: inline-block; margin: 2px;
       image-rendering: pixelated; border-radius: 3px; }
.prov { display:grid; grid-template-columns: 180px 1fr; gap: 4px 14px; font-size: 13px; }
.prov dt { color: var(--muted); }
.prov dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px;
           word-break: break-all; }
table.kv { border-collapse: collapse; font-size: 12.5px; }
table.kv td, table.kv th { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align:left; vertical-align: top; }
table.kv td code { font-size: 12px; }
details { margin-top: 10px; }
details summary { cursor: pointer; color:#1f5fbf; }
pre { background: var(--soft); padding: 10px; border-radius: 6px; overflow-x: auto; font-size: 12px; }
footer { color: var(--muted); font-size: 12px; margin-top: 40px; }
.note { color: var(--muted); font-size: 12px; }
"""


# ---------------------------------------------------------------- media helpers
def _fig_png_b64(fig, dpi: int = 110) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _check_clip(key: Any, clip: Any) -> np.ndarray:
    a = np.asarray(clip)
    if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3 or a.shape[0] < 1:
        raise InputError(f"sample {key!r}: expected uint8 frames [F, H, W, 3], got {a.dtype} {a.shape}")
    return a


def animate(clip: np.ndarray, max_side: int = ANIM_MAX_SIDE, max_frames: int = ANIM_MAX_FRAMES,
            fps: int = ANIM_FPS) -> Tuple[str, bytes]:
    """Encode uint8 frames [F, H, W, 3] as an animated WebP (GIF if WebP is unavailable).

    Returns ``(mime type, bytes)``. Frames are subsampled to at most
    ``max_frames`` and downscaled so the longer side is at most ``max_side``,
    which keeps an embedded clip at tens of kilobytes.
    """
    from PIL import Image, features  # heavy: PIL, only when sample strips are written

    clip = _check_clip("clip", clip)
    step = max(1, int(np.ceil(clip.shape[0] / max_frames)))
    frames = clip[::step]
    h, w = frames.shape[1:3]
    scale = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    imgs = [Image.fromarray(f).resize(size, Image.Resampling.BILINEAR) if scale < 1 else Image.fromarray(f)
            for f in frames]
    duration = int(1000 * step / fps)
    buf = io.BytesIO()
    if features.check("webp"):
        imgs[0].save(buf, format="WEBP", save_all=True, append_images=imgs[1:], duration=duration, loop=0,
                     quality=80, method=4)
        return "image/webp", buf.getvalue()
    imgs[0].save(buf, format="GIF", save_all=True, append_images=imgs[1:], duration=duration, loop=0)
    return "image/gif", buf.getvalue()


_MIME = {".mp4": "video/mp4", ".webm": "video/webm", ".webp": "image/webp", ".gif": "image/gif",
         ".png": "image/png"}


def _as_list(v: SampleValue) -> List[Any]:
    if isinstance(v, np.ndarray):
        return [v] if v.ndim == 4 else list(v) if v.ndim == 5 else [v]
    if isinstance(v, (str, Path)):
        return [v]
    return list(v)


def _media_items(samples: Mapping[Tuple[str, int], SampleValue], per_cell: int, budget: int):
    """{(method, nfe): [(mime, b64) ...]} within the byte budget, plus notes on what was left out."""
    out: Dict[Tuple[str, int], List[Tuple[str, str]]] = {}
    notes: List[str] = []
    used = 0
    for key in samples:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise InputError(f"sample keys must be (method, nfe) tuples, got {key!r}")
    for key in sorted(samples, key=lambda k: (str(k[0]), int(k[1]))):
        items = []
        for item in _as_list(samples[key])[:per_cell]:
            if isinstance(item, (str, Path)):
                p = Path(item)
                mime = _MIME.get(p.suffix.lower())
                if mime is None:
                    raise InputError(f"sample {key!r}: cannot embed {p.name}; use .mp4, .webm, .webp, .gif or .png, "
                                     f"or pass uint8 frames")
                if not p.is_file():
                    raise MissingInput(f"sample {key!r}: file not found: {p}")
                if p.stat().st_size > MAX_VIDEO_BYTES:
                    notes.append(f"{p.name} ({p.stat().st_size / 2**20:.1f} MB) left out: over the "
                                 f"{MAX_VIDEO_BYTES / 2**20:.0f} MB per-file limit")
                    continue
                data = p.read_bytes()
            else:
                mime, data = animate(_check_clip(key, item))
            if used + len(data) > budget:
                notes.append(f"sample for {key[0]} at {key[1]} steps left out: the report's "
                             f"{budget / 2**20:.0f} MB media budget is used up")
                continue
            used += len(data)
            items.append((mime, base64.b64encode(data).decode("ascii")))
        out[key] = items
    return out, notes


# ---------------------------------------------------------------- HTML pieces
def _e(x: Any) -> str:
    return html.escape(str(x))


def _kv_table(d: Mapping[str, Any]) -> str:
    if not d:
        return '<p class="note">none recorded</p>'
    rows = []
    for k, v in d.items():
        val = v if isinstance(v, str) else json.dumps(v, sort_keys=True, ensure_ascii=False)
        rows.append(f"<tr><th>{_e(k)}</th><td><code>{_e(val)}</code></td></tr>")
    return '<table class="kv">' + "".join(rows) + "</table>"


def _section_tables(res: Results, with_paper: bool) -> Tuple[List[Tuple[str, str]], str]:
    nav, parts = [], []
    t1 = build_table1(res, with_paper=with_paper)
    parts.append('<section id="table1"><h2>Table 1 · UCF-101 FVD and CLIPSIM</h2>' + to_html(t1, "table-1"))
    if not with_paper:
        parts.append("<details><summary>The paper's Table 1 for reference</summary>"
                     + to_html(build_table1(paper.as_results()), "table-1-paper") + "</details>")
    parts.append("</section>")
    nav.append(("table1", "Table 1"))
    parts.append('<section id="metrics"><h2>All metrics</h2>' + to_html(build_table1_extended(res), "table-1-extended")
                 + to_html(build_metrics_table(res), "metric-facts") + "</section>")
    nav.append(("metrics", "Metrics"))
    if res.vbench:
        parts.append('<section id="table2"><h2>Table 2 · VBench</h2>' + to_html(build_table2(res, with_paper=True),
                                                                             "table-2") + "</section>")
        nav.append(("table2", "Table 2"))
    if res.timing:
        parts.append('<section id="timing"><h2>Inference time</h2>' + to_html(build_time_table(res, with_paper=True),
                                                                          "time-table") + "</section>")
        nav.append(("timing", "Timing"))
    if res.ablation:
        parts.append('<section id="ablation"><h2>Ablation · decoupled vs joint distillation</h2>'
                     + to_html(build_ablation_table(res, with_paper=True), "ablation-table")
                     + '<p class="note">Each metric against training step, one curve per strategy with its '
                       'interval band: see the figures <a href="#plots">'
                       + _e(_stems(clip_row_metrics(r.metric for a in res.ablation for r in a.rows),
                                   "ablation_{}_vs_step"))
                       + '</a>.</p></section>')
        nav.append(("ablation", "Ablation"))
    if has_leaderboard(res):
        parts.append('<section id="leaderboard"><h2>Leaderboard · few-step generators</h2>'
                     + to_html(build_leaderboard_table(res), "leaderboard-table")
                     + '<p class="note">Quality against time, with the Pareto front: see the figures '
                       '<a href="#plots">' + _e(_stems(leaderboard_metrics(res), "{}_vs_time")) + '</a>.</p></section>')
        nav.append(("leaderboard", "Leaderboard"))
    return nav, "\n".join(parts)


def _stems(metric_names: Sequence[str], pattern: str) -> str:
    """The figure stems of some metrics, as a phrase ("a, b and c")."""
    stems = [pattern.format(m) for m in metric_names]
    return " and ".join([", ".join(stems[:-1]), stems[-1]] if len(stems) > 1 else stems)


# figure stem "<prefix><metric><suffix>" -> caption, {} the metric's display name
_CAPTIONS = (("", "_vs_nfe", "{} against denoising steps; bands are bootstrap intervals."),
             ("", "_vs_time", "Speed/quality trade-off: {} against denoising time per video (labels: steps; "
                              "ringed: the Pareto front)."),
             ("ablation_", "_vs_step", "Ablation: {} against training step, decoupled vs joint distillation."))
CONTACT_SHEET_CAPTION = "Sample frames (first / middle / last) per method and step count, same prompt and seed."


def _caption(stem: str) -> str:
    if stem == "contact_sheet":
        return CONTACT_SHEET_CAPTION
    for prefix, suffix, text in _CAPTIONS:
        metric = stem[len(prefix):-len(suffix)] if stem.startswith(prefix) and stem.endswith(suffix) else ""
        if is_known_metric(metric):
            return text.format(metric_display(metric))
    return stem


def _section_plots(figs: Mapping[str, Any]) -> str:
    if not figs:
        return ""
    items = []
    for stem, fig in figs.items():
        wide = ' class="wide"' if stem == "contact_sheet" else ""
        items.append(f'<figure{wide}><img alt="{_e(stem)}" src="data:image/png;base64,{_fig_png_b64(fig)}">'
                     f"<figcaption>{_e(_caption(stem))}</figcaption></figure>")
    return '<section id="plots"><h2>Figures</h2><div class="plots">' + "".join(items) + "</div></section>"


def _section_samples(res: Results, samples: Optional[Mapping[Tuple[str, int], SampleValue]], per_cell: int,
                     budget: int) -> str:
    if not samples:
        return ""
    media, notes = _media_items(samples, per_cell, budget)
    methods = [m for m in res.method_order() if any(k[0] == m for k in media)]
    methods += sorted({k[0] for k in media} - set(methods))
    nfes = sorted({int(k[1]) for k in media})
    head = "<tr><th></th>" + "".join(f"<th>{k}-Step</th>" for k in nfes) + "</tr>"
    body = []
    for m in methods:
        cells = []
        for k in nfes:
            items = media.get((m, k), [])
            tags = []
            for i, (mime, b64) in enumerate(items):
                alt = f"{res.display_name(m)} {k}-step sample {i + 1}"
                if mime.startswith("video/"):
                    tags.append(f'<video autoplay loop muted playsinline title="{_e(alt)}" '
                                f'src="data:{mime};base64,{b64}"></video>')
                else:
                    tags.append(f'<img alt="{_e(alt)}" src="data:{mime};base64,{b64}">')
            cells.append("<td>" + ("".join(tags) or '<span class="note">–</span>') + "</td>")
        body.append(f"<tr><th>{_e(res.display_name(m))}</th>{''.join(cells)}</tr>")
    note = "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
    return ('<section id="samples"><h2>Samples</h2><p class="note">Animated, looping; the same prompt and seed '
            'in every cell of a row.</p><table class="samples">' + head + "".join(body) + "</table>" + note
            + "</section>")


def _section_provenance(res: Results) -> str:
    p, r, b = res.provenance, res.run, res.bootstrap
    git = p.git_commit or "unknown"
    if p.git_dirty:
        git += " (uncommitted changes)"
    dev = p.device
    dl = [("experiment", r.experiment), ("run directory", r.run_dir), ("started", r.started_at),
          ("finished", r.finished_at), ("wall time", f"{r.wall_time_s:,.1f} s"), ("weights", r.weights_mode),
          ("git commit", git), ("device", f"{dev.name} ({dev.type}{', CUDA ' + dev.cuda if dev.cuda else ''}, {dev.dtype})"),
          ("seeds", ", ".join(f"{k}={v}" for k, v in p.seeds.items())),
          ("bootstrap", f"{b.n_boot} resamples, seed {b.seed}, alpha {b.alpha:g}, {b.method}"),
          ("prompt set", f"{p.prompt_set.get('name')} (sha256 {p.prompt_set.get('sha256') or 'not recorded'})"),
          ("schema", res.schema_version)]
    parts = ['<section id="provenance"><h2>Provenance</h2><dl class="prov">']
    parts += [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in dl]
    parts.append("</dl>")
    parts.append("<h3>Metric protocols</h3>")
    for fam, proto in p.protocols.items():
        rest = {k: v for k, v in proto.items() if k not in ("name", "version")}
        parts.append(f"<details open><summary><b>{_e(fam)}</b>: {_e(proto['name'])} v{_e(proto['version'])} "
                     f"(id <code>{_e(protocol_id(proto))}</code>)</summary>{_kv_table(rest)}</details>")
    parts.append("<h3>Methods</h3>")
    rows = []
    for mid, m in res.methods.items():
        rows.append(f"<tr><th>{_e(m.display_name)}<br><span class='note'>{_e(mid)}</span></th>"
                    f"<td>{m.guidance_scale:g}</td>"
                    f"<td><code>{_e(json.dumps(m.scheduler, sort_keys=True, ensure_ascii=False))}</code></td>"
                    f"<td><code>{_e(json.dumps(m.weights, sort_keys=True, ensure_ascii=False))}</code></td></tr>")
    parts.append('<table class="kv"><tr><th>method</th><th>CFG</th><th>scheduler</th><th>weights</th></tr>'
                 + "".join(rows) + "</table>")
    parts.append("<h3>Packages</h3>" + _kv_table(dict(sorted(p.packages.items()))))
    parts.append("<details><summary>Resolved configuration</summary><pre>"
                 + _e(json.dumps(p.config, indent=2, sort_keys=True, ensure_ascii=False)) + "</pre></details>")
    parts.append("</section>")
    return "\n".join(parts)


def render_report(results: Union[Results, Mapping[str, Any]],
                  samples: Optional[Mapping[Tuple[str, int], SampleValue]] = None, with_paper: Optional[bool] = None,
                  figs: Optional[Mapping[str, Any]] = None, videos_per_cell: int = VIDEOS_PER_CELL,
                  media_budget: int = MAX_MEDIA_BYTES) -> str:
    """The report page as an HTML string (see :func:`write_report`)."""
    res = as_results(results)
    if with_paper is None:
        with_paper = res.weights_mode == "pretrained"
    figs = figures(res, _first_clips(samples), with_paper=with_paper) if figs is None else figs
    if res.weights_mode != "pretrained":
        banner = f'<div class="banner warn" id="weights-banner">⚠ {_e(res.label)}</div>'
    else:
        banner = ('<div class="banner ok" id="weights-banner">Pretrained weights'
                  + (f" · {_e(res.label)}" if res.label else "") + "</div>")
    nav, tables_html = _section_tables(res, with_paper)
    plots_html = _section_plots(figs)
    samples_html = _section_samples(res, samples, videos_per_cell, media_budget)
    if plots_html:
        nav.append(("plots", "Figures"))
    if samples_html:
        nav.append(("samples", "Samples"))
    nav.append(("provenance", "Provenance"))
    git = (res.provenance.git_commit or "unknown")[:12] + (" (dirty)" if res.provenance.git_dirty else "")
    meta = (f"{_e(res.run.experiment)} · {_e(res.weights_mode)} weights · {_e(res.run.started_at)} · "
            f"{res.run.wall_time_s:,.0f} s · git {_e(git)} · {_e(res.provenance.device.name)}")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        "<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>lcmbench · {_e(res.run.experiment)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        f'<header class="top"><h1>lcmbench report · {_e(res.run.experiment)}</h1><div class="meta">{meta}</div>'
        + "<nav>" + "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in nav) + "</nav></header>",
        banner, "<main>", tables_html, plots_html, samples_html, _section_provenance(res),
        f"<footer>AnimateLCM reproduction harness · results schema {SCHEMA_VERSION} · page written {generated}. "
        f"Paper: {_e(paper.CITATION)} (arXiv:{paper.ARXIV}).</footer>",
        "</main>", "</body>", "</html>", ""])


def write_report(results: Union[Results, Mapping[str, Any]], run_dir: PathLike,
                 samples: Optional[Mapping[Tuple[str, int], SampleValue]] = None,
                 with_paper: Optional[bool] = None) -> Path:
    """Write ``run_dir/report.html`` (self-contained) and return its path.

    ``samples`` maps ``(method, nfe)`` to uint8 frames [F, H, W, 3], a list of
    such clips, or paths of .mp4/.webm/.webp/.gif files; at most
    ``VIDEOS_PER_CELL`` per cell are embedded, within ``MAX_MEDIA_BYTES``.
    ``with_paper`` (default: only for pretrained weights) puts the paper's
    numbers beside the run's in Table 1 and the figures.
    """
    path = Path(run_dir) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_report(results, samples, with_paper)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def _first_clips(samples: Optional[Mapping[Tuple[str, int], SampleValue]]) -> Dict[Tuple[str, int], np.ndarray]:
    """One frame array per cell for the contact sheet (files are shown only in the report)."""
    out = {}
    for key, v in (samples or {}).items():
        for item in _as_list(v):
            if not isinstance(item, (str, Path)):
                out[key] = _check_clip(key, item)
                break
    return out


def write_all(results: Union[Results, Mapping[str, Any]], run_dir: PathLike,
              samples: Optional[Mapping[Tuple[str, int], SampleValue]] = None,
              with_paper: Optional[bool] = None) -> List[Path]:
    """Write every artefact of a run under ``run_dir``; returns the paths written.

    results.json, results.csv, tables/*.md|tex (Table 1 and its extension to every
    per-clip metric always; Table 2, the
    time table and the ablation table when their data exist), plots/*.png|pdf
    and report.html. Validates the results first: nothing is written for an
    invalid results dict. Every file is written whole or not at all (a temporary
    beside it, then a rename), and results.json comes last, so its presence means
    the rest was written.
    """
    res = as_results(results)
    if with_paper is None:
        with_paper = res.weights_mode == "pretrained"
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(results, Results):
        validate(res.to_dict())   # a dict was validated by as_results: nothing is written for invalid results
    paths: List[Path] = []
    tables: List[Tuple[str, Table]] = [("table1", build_table1(res, with_paper=with_paper)),
                                       ("table1_extended", build_table1_extended(res))]
    if res.vbench:
        tables.append(("table2", build_table2(res, with_paper=True)))
    if res.timing:
        tables.append(("time_table", build_time_table(res, with_paper=True)))
    if res.ablation:
        tables.append(("ablation", build_ablation_table(res, with_paper=with_paper)))
    if has_leaderboard(res):
        tables.append(("leaderboard", build_leaderboard_table(res)))
    tdir = run_dir / "tables"
    tdir.mkdir(exist_ok=True)
    for name, t in tables:
        for fmt in ("md", "tex"):
            paths.append(write_atomic(tdir / f"{name}.{fmt}", render(t, fmt)))
    figs = figures(res, _first_clips(samples), with_paper=with_paper)
    for stem, fig in figs.items():
        paths += save_figure(fig, run_dir / "plots" / stem)
    paths.append(write_atomic(run_dir / "report.html", render_report(res, samples, with_paper, figs=figs)))
    paths += [write_csv(run_dir / "results.csv", res), save(run_dir / "results.json", res)]
    return paths
