"""Page weight, time to first render and sorting time of the HTML pages, in headless Chromium (offline).

    python tools/bench_html.py PAGE.html [PAGE.html ...] [--rounds 3] [--grow PROFILE.json]

For each page: its bytes (with the scripts it loads from beside it), the
milliseconds from navigation until every chart of the first view has drawn
(``window.tfprofscaleRenderedMs``) and until the first table is sorted by its
second numeric column, each the median of ``--rounds`` fresh loads, pages
interleaved. ``--grow`` writes profile pages of ever larger models made by
repeating the given profile's layers (k copies nested as ``copy<i>/...``) and
reports the sorting time per row count, to find the largest page that stays
responsive (sorting under 200 ms). The load average is printed before and after.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.html_support import launch  # noqa: E402

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


def measure(context, path: Path) -> tuple[float, float, int]:
    """(ms to first render, ms to sort the first table, its rows) of one fresh load."""
    page = context.new_page()
    page.goto(path.resolve().as_uri(), timeout=300_000)
    page.wait_for_function("window.tfprofscaleRenderedMs !== undefined", timeout=300_000)
    rendered = page.evaluate("window.tfprofscaleRenderedMs")
    sort_ms, rows = page.evaluate(SORT_JS)
    page.close()
    return rendered, sort_ms, rows


def grown_report(profile: dict, copies: int) -> dict:
    """The profile's layers and ops repeated ``copies`` times, each copy a nested model ``copy<i>``."""
    report = copy.deepcopy(profile)
    report["layers"], report["ops"] = [], []
    for index in range(copies):
        prefix = f"copy{index}"
        for layer in profile["layers"]:
            row = copy.deepcopy(layer)
            row["name"] = f"{prefix}/{layer['name']}"
            row["parent"] = f"{prefix}/{layer['parent']}" if layer.get("parent") else prefix
            row["depth"] = layer.get("depth", 0) + 1
            row["inbound"] = [f"{prefix}/{name}" for name in layer.get("inbound") or []]
            report["layers"].append(row)
        for op in profile["ops"]:
            row = copy.deepcopy(op)
            row["name"] = f"{prefix}/{op['name']}"
            row["layer"] = f"{prefix}/{op['layer']}" if op.get("layer") else None
            row["fused_into"] = f"{prefix}/{op['fused_into']}" if op.get("fused_into") else None
            row["fused_ops"] = [f"{prefix}/{name}" for name in op.get("fused_ops") or []]
            report["ops"].append(row)
    if report.get("memory"):
        report["memory"]["live_timeline"] = [
            {**step, "op": f"copy{index}/{step['op']}", "layer": f"copy{index}/{step['layer']}"
             if step.get("layer") else None}
            for index in range(copies) for step in profile["memory"].get("live_timeline") or []]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--grow", type=Path, help="a profile JSON whose layers are repeated to grow the page")
    parser.add_argument("--copies", default="1,2,4,8,16", help="copies of the layers for --grow")
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
        sort = statistics.median(r[1] for r in runs)
        print(f"| {page.name} | {page_bytes(page):,} | {render:.0f} | {sort:.1f} | {runs[0][2]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
