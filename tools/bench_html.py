"""Page weight, time to first render and sorting time of the HTML pages, in headless Chromium (offline).

    python tools/bench_html.py PAGE.html [PAGE.html ...] [--rounds 3] [--grow PROFILE.json]

For each page: its bytes (with the scripts it loads from beside it), the
milliseconds from navigation until every chart of the first view has drawn
(``window.tfprofscaleRenderedMs``) and until the first table is sorted by its
second numeric column, each the median of ``--rounds`` fresh loads, pages
interleaved. ``--grow`` writes profile pages of ever larger models made by
repeating the given profile's layers (k copies nested as ``copy<i>/...``) and
reports the sorting time per row count, to find the largest page that stays
responsive (sorting under 200 ms). ``--libraries`` also writes a one-scatter
page with each offline plotting library that is importable (plotly here; bokeh
with its inline resources when installed, e.g. ``pip install --target DIR
bokeh`` and DIR on PYTHONPATH) and measures them alike (until the chart has
drawn). The load average is printed before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.html_support import grown_report, launch

SORT_JS = """() => {
  const table = Object.values(window.tfprofscaleTables)[0];
  const index = table.columns.findIndex(c => c.format !== 'text' && c.format !== 'shape');
  const start = performance.now();
  table.sortBy(index);
  document.body.getBoundingClientRect();
  return [performance.now() - start, table.rows.length];
}"""


def page_bytes(path: Path) -> int:
    """The page and every script it loads from beside it."""
    text = path.read_text()
    scripts = [path.parent / src for src in re.findall(r'<script src="([^"]+)"', text)]
    return path.stat().st_size + sum(script.stat().st_size for script in scripts)


RENDERED = "window.tfprofscaleRenderedMs"
#: bokeh renders after the load event; its root views are in Bokeh.index once drawn (polled every frame).
BOKEH_RENDERED = """new Promise(done => (function poll() {
  const views = window.Bokeh && Bokeh.index ? Object.values(Bokeh.index) : [];
  views.length ? done(performance.now()) : requestAnimationFrame(poll); })())"""


def measure(context, path: Path) -> tuple[float, float | None, int]:
    """(ms to first render, ms to sort the first table, its rows) of one fresh load."""
    page = context.new_page()
    page.goto(path.resolve().as_uri(), timeout=300_000)
    if path.name.startswith("library-bokeh"):
        rendered = page.evaluate(BOKEH_RENDERED)
        page.close()
        return rendered, None, 0
    page.wait_for_function(f"{RENDERED} !== undefined", timeout=300_000)
    rendered = page.evaluate(RENDERED)
    sort_ms, rows = page.evaluate(SORT_JS) if page.evaluate("Object.keys(window.tfprofscaleTables).length") \
        else (None, 0)
    page.close()
    return rendered, sort_ms, rows


def library_pages(folder: Path) -> list[Path]:
    """One page with one 1,000-point scatter per importable offline plotting library."""
    from tfprofscale.report.html.page import Chart, Page, Section, write_page

    xs = [i / 10 for i in range(1000)]
    ys = [(i * 7919) % 1000 for i in range(1000)]
    pages = [folder / "library-plotly.html"]
    write_page(pages[0], Page("plotly", sections=[Section("one scatter", [Chart(
        {"data": [{"type": "scatter", "mode": "markers", "x": xs, "y": ys}], "layout": {}})])]))
    try:
        from bokeh.embed import file_html
        from bokeh.plotting import figure
        from bokeh.resources import INLINE
    except ImportError:
        print("bokeh not importable: only plotly measured")
        return pages
    plot = figure(width=900, height=420)
    plot.scatter(xs, ys)
    pages.append(folder / "library-bokeh.html")
    pages[-1].write_text(file_html(plot, INLINE, "bokeh"))
    return pages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--grow", type=Path, help="a profile JSON whose layers are repeated to grow the page")
    parser.add_argument("--copies", default="1,2,4,8,16", help="copies of the layers for --grow")
    parser.add_argument("--libraries", action="store_true", help="also measure one-chart pages per library")
    args = parser.parse_args()
    pages = list(args.pages)
    if args.grow:
        from tfprofscale.report.html.profile_page import write_profile_page

        profile = json.loads(args.grow.read_text())
        folder = Path(tempfile.mkdtemp(prefix="tfprofscale-grow-"))
        for copies in (int(c) for c in args.copies.split(",")):
            path = folder / f"grown-x{copies}.html"
            write_profile_page(path, grown_report(profile, copies), None, "left out of the growth benchmark")
            pages.append(path)
    if args.libraries:
        pages += library_pages(Path(tempfile.mkdtemp(prefix="tfprofscale-libraries-")))
    from playwright.sync_api import sync_playwright

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results: dict[Path, list[tuple[float, float, int]]] = {page: [] for page in pages}
    with sync_playwright() as playwright:
        context = launch(playwright)
        for _ in range(args.rounds):
            for page in pages:
                results[page].append(measure(context, page))
        context.close()
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| page | bytes | first render (ms, median) | sort (ms, median) | table rows |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for page, runs in results.items():
        render = statistics.median(r[0] for r in runs)
        sorts = [r[1] for r in runs if r[1] is not None]
        sort = f"{statistics.median(sorts):.1f}" if sorts else "-"
        print(f"| {page.name} | {page_bytes(page):,} | {render:.0f} | {sort} | {runs[0][2]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
