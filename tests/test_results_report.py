"""results.plots and results.report: figures, the self-contained HTML page, and write_all."""
import base64
import copy
import os
import re
import subprocess

import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from results import plots
from results.report import animate, render_report, write_all, write_report
from results.schema import load
from tests.synthetic import make_results, make_samples

CHROMIUM = "/usr/bin/chromium"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny():
    return make_results(n_boot=50)


@pytest.fixture(scope="module")
def written(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("run")
    samples = make_samples(frames=6, size=32)
    paths = write_all(tiny, out, samples=samples)
    return out, paths, samples


def test_write_all_writes_every_artefact(written, tiny):
    out, paths, _ = written
    names = {p.relative_to(out).as_posix() for p in paths}
    expected = {"results.json", "results.csv", "report.html"}
    expected |= {f"tables/{t}.{f}" for t in ("table1", "table1_extended", "table2", "time_table", "ablation")
                 for f in ("md", "tex")}
    expected |= {f"plots/{p}.{f}" for p in ("fvd_vs_nfe", "clipsim_vs_nfe", "fvd_vs_time", "clipsim_vs_time",
                                             "ablation_fvd_vs_step", "ablation_clipsim_vs_step", "contact_sheet")
                 for f in ("png", "pdf")}
    assert names == expected
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    for p in out.glob("plots/*.png"):
        assert p.read_bytes()[:8] == PNG_MAGIC
    for p in out.glob("plots/*.pdf"):
        assert p.read_bytes()[:5] == b"%PDF-"
    assert load(out / "results.json").to_dict()["rows"] == tiny["rows"]
    assert "TINY RANDOM WEIGHTS" in (out / "tables" / "table1.md").read_text()


def test_optional_artefacts_follow_the_data(tmp_path, tiny):
    d = copy.deepcopy(tiny)
    d["vbench"], d["timing"], d["ablation"] = {}, [], None
    names = {p.name for p in write_all(d, tmp_path)}
    assert "table1.md" in names and "fvd_vs_nfe.png" in names
    assert not names & {"table2.md", "time_table.md", "ablation.md", "fvd_vs_time.png", "contact_sheet.png"}


def test_invalid_results_write_nothing(tmp_path, tiny):
    d = copy.deepcopy(tiny)
    d["rows"][0]["nfe"] = -4
    with pytest.raises(ValueError, match=r"rows\[0\]\.nfe"):
        write_all(d, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_failure_part_way_leaves_no_results_json_and_no_torn_file(tmp_path, tiny, monkeypatch):
    """results.json is written last: a run dir with it holds every artefact; one
    without it was interrupted. No half-written file or temporary is left."""
    import results.report as report_mod

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_mod, "render_report", broken)
    with pytest.raises(OSError, match="No space left"):
        write_all(tiny, tmp_path)
    assert not (tmp_path / "results.json").exists() and not (tmp_path / "report.html").exists()
    written_files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written_files and not [p for p in written_files if p.name.startswith(".")]
    assert all(p.stat().st_size > 0 for p in written_files)


def test_report_is_self_contained(written):
    out, _, _ = written
    page = (out / "report.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page), "report must not load anything from the network"
    assert 'id="weights-banner"' in page and "TINY RANDOM WEIGHTS" in page
    for anchor in ("table1", "table2", "timing", "ablation", "plots", "samples", "provenance"):
        assert f'id="{anchor}"' in page
    imgs = re.findall(r'src="data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)"', page)
    pngs = [b for m, b in imgs if m == "image/png"]
    anims = [b for m, b in imgs if m in ("image/webp", "image/gif")]
    assert len(pngs) == 7 and base64.b64decode(pngs[0])[:8] == PNG_MAGIC
    assert len(anims) == 16  # one clip per (method, NFE) cell
    assert "0123456789abcdef" in page and "LCMScheduler" in page and "torch" in page
    assert (out / "report.html").stat().st_size < 5 * 2**20


def test_animated_sample_encoding():
    clip = make_samples(methods=["animatelcm"], nfes=[4], frames=12, size=300)[("animatelcm", 4)]
    mime, data = animate(clip, max_side=100, max_frames=6)
    assert mime in ("image/webp", "image/gif") and len(data) < 200_000
    from io import BytesIO

    from PIL import Image

    im = Image.open(BytesIO(data))
    assert max(im.size) == 100 and getattr(im, "n_frames", 1) == 6
    with pytest.raises(ValueError, match=r"uint8 frames \[F, H, W, 3\]"):
        animate(np.zeros((4, 8, 8, 3), dtype=np.float32))


def test_report_media_budget_and_files(tmp_path, tiny):
    samples = make_samples(methods=["animatelcm", "ddim"], nfes=[4], frames=6, size=64)
    gif = tmp_path / "clip.gif"
    mime, data = animate(samples[("ddim", 4)])
    gif.write_bytes(data)
    page = render_report(tiny, {("animatelcm", 4): samples[("animatelcm", 4)], ("ddim", 4): [gif]},
                         media_budget=len(data) + 10, figs={})
    assert page.count("data:image/webp") + page.count("data:image/gif") == 1
    assert "media budget is used up" in page
    with pytest.raises(ValueError, match="cannot embed"):
        render_report(tiny, {("ddim", 4): [tmp_path / "clip.avi"]}, figs={})


def test_plots_have_bands_and_labelled_titles(tiny):
    fig = plots.plot_metric_vs_nfe(tiny, "fvd")
    ax = fig.axes[0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 4  # one confidence band per method
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["DDIM", "DPM++", "Ours", "Ours-R"]
    assert "TINY RANDOM WEIGHTS" in fig._suptitle.get_text()
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "Ours")
    ours = sorted((r["nfe"], r["value"]) for r in tiny["rows"] if r["method"] == "animatelcm" and r["metric"] == "fvd")
    np.testing.assert_allclose(line.get_ydata(), [v for _, v in ours])
    t = plots.plot_quality_vs_time(tiny, "clipsim")
    assert t.axes[0].get_xscale() == "log" and len(t.axes[0].texts) == 16  # one NFE label per point
    a = plots.plot_ablation(tiny, "fvd", with_paper=True)
    assert {l.get_label() for l in a.axes[0].get_lines()} >= {"decoupled", "joint", "decoupled (paper)"}
    pretrained = copy.deepcopy(tiny)
    pretrained["run"].update(weights_mode="pretrained", label="")
    assert plots.plot_metric_vs_nfe(pretrained, "fvd")._suptitle is None


def test_contact_sheet_grid_and_errors(tiny):
    samples = make_samples(methods=["ddim", "animatelcm"], nfes=[1, 4, 8], frames=5, size=16)
    fig = plots.contact_sheet(samples, results=tiny)
    assert len(fig.axes) == 6
    assert fig.axes[0].get_ylabel() == "DDIM" and fig.axes[3].get_ylabel() == "Ours"
    assert [ax.get_title() for ax in fig.axes[:3]] == ["1-Step", "4-Step", "8-Step"]
    img = fig.axes[0].images[0].get_array()
    assert img.shape[1] > 3 * 16  # first, middle and last frame side by side
    with pytest.raises(ValueError, match=r"uint8 frames \[F, H, W, 3\]"):
        plots.contact_sheet({("ddim", 1): np.zeros((5, 16, 16), dtype=np.uint8)})
    with pytest.raises(ValueError, match="no samples"):
        plots.contact_sheet({})
    with pytest.raises(ValueError, match="no 'vbench_total' rows"):
        plots.plot_metric_vs_nfe(tiny, "vbench_total")


def _chromium(args, tmp_path, timeout=90):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBUS")}
    return subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(written, tmp_path):
    out, _, _ = written
    url = (out / "report.html").resolve().as_uri()
    dom = _chromium(["--dump-dom", url], tmp_path)
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-2000:]
    html = dom.stdout.decode("utf-8")
    assert html.count("<table") >= 5  # Table 1, Table 2, time, ablation, samples (+ provenance)
    assert 'id="table-1"' in html and 'id="table-2"' in html and 'id="time-table"' in html
    assert "4-Step" in html and "CLIPSIM" in html
    # a tiny run is not ranked among published VBench scores
    assert "VideoCrafter-2.0" not in html and "are not listed beside tiny-weight rows" in html
    assert html.count("<img") >= 7 + 16
    assert "TINY RANDOM WEIGHTS" in html
    shot = tmp_path / "shot.png"
    res = _chromium([f"--screenshot={shot}", "--window-size=1200,1600", url], tmp_path)
    assert res.returncode == 0 and shot.is_file()
    from PIL import Image

    px = np.asarray(Image.open(shot).convert("RGB"))
    assert px.shape[:2] == (1600, 1200)
    assert px.std() > 10  # rendered content, not a blank page
    # The warning banner's pink background is on screen.
    assert np.any(np.all(np.abs(px.astype(int) - [0xFD, 0xE8, 0xEA]) < 4, axis=-1))


def test_write_report_alone(tmp_path, tiny):
    p = write_report(tiny, tmp_path)
    assert p.name == "report.html" and "Table 1" in p.read_text()


_PROBE = """<script>(function () {
  var r = [];
  document.querySelectorAll('figure.table').forEach(function (f) {
    r.push({id: f.id, scroll: f.scrollWidth, client: f.clientWidth}); });
  var d = document.documentElement;
  r.push({id: 'page', scroll: d.scrollWidth, client: d.clientWidth});
  document.body.setAttribute('data-widths', JSON.stringify(r));
})();</script>"""


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium (apt-get install -y chromium)")
@pytest.mark.parametrize("width", [1280, 1920])
def test_no_table_scrolls_sideways_in_headless_chromium(written, tmp_path, width):
    """Every table of the page (Table 1's eight step columns with intervals, Table 2, the
    time and ablation tables) fits the window: no horizontal scroll bar at 1280 or 1920 px."""
    import json

    out, _, _ = written
    page = tmp_path / "probe.html"   # a copy with a script that measures the laid-out page
    page.write_text((out / "report.html").read_text().replace("</body>", _PROBE + "</body>"))
    dom = _chromium([f"--window-size={width},1000", "--dump-dom", page.resolve().as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-2000:]
    found = re.search(r'data-widths="([^"]*)"', dom.stdout.decode("utf-8"))
    assert found, "the probe did not run"
    widths = json.loads(found.group(1).replace("&quot;", '"'))
    ids = {w["id"] for w in widths}
    assert {"table-1", "table-2", "time-table", "ablation-table", "page"} <= ids, ids
    assert widths[-1]["client"] > width - 40          # the window size took effect
    wide = [w for w in widths if w["scroll"] > w["client"]]
    assert not wide, f"scrolls sideways at {width} px: {wide}"
