"""The HTML pages in a real headless Chromium (the system's), offline: every chart drew, no console error,
no request left the page, the table sorts; pages without a trace or memory say why; ``--html`` refusals."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.cli_faults import DENSE_TEMPLATE, one_line_error
from tests.html_support import (
    chromium_path,
    grown_report,
    launch,
    synthetic_records,
    write_sweep_dir,
)
from tfprofscale.cli import main

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="no Chromium found (apt-get install chromium): the pages need a real browser")

#: Elements plotly draws for data (scatter/bar/box traces, sunburst slices, heatmap images).
DRAWN = "g.trace path, g.trace .point, g.slice path, g.hm image"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    with sync_api.sync_playwright() as playwright:
        context = launch(playwright)
        yield context
        context.close()


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    """A real profile of the two-layer CNN, written by ``profile --json --html``."""
    import textwrap

    from tests.conftest import TWO_LAYER_CNN

    from tfprofscale.profiling.runtime.machine_peaks import cache_path, measure_peaks

    # Peaks measured and cached first (an audit caches them only on a quiet machine): the page only reads the cache.
    cache_path().parent.mkdir(parents=True, exist_ok=True)
    cache_path().write_text(json.dumps(measure_peaks(repeats=2).to_dict()))
    folder = tmp_path_factory.mktemp("html")
    model = folder / "two_layer_cnn.py"
    model.write_text(textwrap.dedent(TWO_LAYER_CNN))
    status = main(["profile", str(model), "--batch-size", "4", "--steps", "5", "--max-time", "0.2", "--quiet",
                   "--logdir", str(folder / "runs"), "--json", str(folder / "report.json"),
                   "--html", str(folder / "report.html")])
    assert status == 0
    return folder


def open_page(browser, path: Path):
    """The page loaded offline, with its console errors and any request that left it."""
    page = browser.new_page()
    errors, outside = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: None if request.url.startswith(("file:", "data:", "blob:", "about:"))
            else outside.append(request.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_function("[...document.querySelectorAll('div.chart')].filter(e => e.offsetParent)"
                           ".every(e => e.dataset.drawn)", timeout=30_000)
    return page, errors, outside


def assert_visible_charts_drew(page) -> int:
    """Every visible chart has an SVG with drawn data; the number of such charts."""
    counts = page.eval_on_selector_all(
        "div.chart", f"els => els.filter(e => e.offsetParent).map(e => [e.id, e.dataset.drawn, "
                     f"e.querySelectorAll('svg.main-svg').length, e.querySelectorAll('{DRAWN}').length])")
    for chart_id, drawn, svgs, marks in counts:
        assert drawn == "1" and svgs > 0 and marks > 0, (chart_id, drawn, svgs, marks)
    return len(counts)


def column_values(page, table: str, header: str) -> list[str]:
    index = page.eval_on_selector_all(f"#{table} th", f"ths => ths.findIndex(th => th.firstChild.textContent "
                                                     f"=== {json.dumps(header)})")
    assert index >= 0, header
    return page.eval_on_selector_all(f"#{table} tbody tr:not(.spacer)", f"rows => rows.map(r => r.cells[{index}].dataset.v)")


def test_profile_page_draws_every_chart_offline_and_sorts(browser, profiled):
    page, errors, outside = open_page(browser, profiled / "report.html")
    assert assert_visible_charts_drew(page) >= 6  # bars, sunbursts, roofline, memory terms, live bytes, cost model
    assert errors == [] and outside == []
    report = json.loads((profiled / "report.json").read_text())
    timeline = report["memory"]["live_timeline"]  # the curve's highest point is the measured in-step peak
    assert max(step["live_bytes"] for step in timeline) == report["memory"]["measured_peak_bytes"]
    names = [layer["name"] for layer in report["layers"]]
    assert column_values(page, "table-0", "Layer") and len(column_values(page, "table-0", "Layer")) == len(names)
    page.click("#table-0 th:has-text('Params')")  # numbers sort largest first
    params = [int(v) for v in column_values(page, "table-0", "Params")]
    assert params == sorted((layer["params"] for layer in report["layers"]), reverse=True)
    page.click("#table-0 th:has-text('Params')")  # again: smallest first
    assert [int(v) for v in column_values(page, "table-0", "Params")] == sorted(params)
    page.fill("input[data-table='table-0']", "conv")
    assert page.eval_on_selector_all("#table-0 tbody tr:not(.spacer)", "rows => rows.length") == 1
    page.close()


def test_nested_models_get_group_rows_that_collapse(browser, profiled, tmp_path):
    from tfprofscale.report.html.profile_page import write_profile_page

    report = json.loads((profiled / "report.json").read_text())
    layers = len(report["layers"])
    write_profile_page(tmp_path / "nested.html", grown_report(report, 2), None, "not asked for")
    page, errors, outside = open_page(browser, tmp_path / "nested.html")
    assert_visible_charts_drew(page)
    rows = "#table-0 tbody tr:not(.spacer)"
    # Two copies of the model, each a nested model with a group row of its own: 2 * (layers + 1) rows.
    assert page.eval_on_selector_all(rows, "rows => rows.length") == 2 * (layers + 1)
    params = sum(layer["params"] for layer in report["layers"])
    assert page.eval_on_selector_all(rows, "rows => rows[0].cells[3].dataset.v") == str(params)  # the group's sum
    page.click("#table-0 button.toggle >> nth=0")
    assert page.eval_on_selector_all(rows, "rows => rows.length") == layers + 2
    page.click("#table-0 button.toggle >> nth=0")
    assert page.eval_on_selector_all(rows, "rows => rows.length") == 2 * (layers + 1)
    assert errors == [] and outside == []
    page.close()


def test_a_long_table_keeps_only_the_rows_in_view_and_sorts_them_all(browser, profiled, tmp_path):
    from tfprofscale.report.html.profile_page import write_profile_page

    report = json.loads((profiled / "report.json").read_text())
    write_profile_page(tmp_path / "long.html", grown_report(report, 20), None, "not asked for")
    page, errors, outside = open_page(browser, tmp_path / "long.html")
    total = 20 * (len(report["layers"]) + 1)  # 20 copies, each its layers and a group row
    page.fill("input[data-table='table-0']", "copy")  # every row matches: one flat list, sorted as a whole
    page.click("#table-0 th:has-text('Params')")
    shown = [int(v) for v in column_values(page, "table-0", "Params")]
    layer_params = [layer["params"] for layer in report["layers"]]
    everything = sorted(layer_params * 20 + [sum(layer_params)] * 20, reverse=True)
    assert 0 < len(shown) < total and shown == everything[:len(shown)]
    page.evaluate("document.querySelector('#table-0').parentElement.scrollTop = 1e6")
    page.wait_for_timeout(300)
    last = [int(v) for v in column_values(page, "table-0", "Params")]
    assert last == everything[-len(last):]
    assert errors == [] and outside == []
    page.close()


def test_without_trace_or_memory_the_page_renders_and_says_why(browser, profiled, tmp_path):
    from tfprofscale.report.html.profile_page import write_profile_page

    report = json.loads((profiled / "report.json").read_text())
    bare = copy.deepcopy(report)
    bare["memory"] = None
    for row in bare["layers"] + bare["ops"]:
        row["time_us"] = None
    write_profile_page(tmp_path / "bare.html", bare, None, "not asked for")
    page, errors, outside = open_page(browser, tmp_path / "bare.html")
    assert_visible_charts_drew(page)
    reasons = page.eval_on_selector_all("div.missing .why", "els => els.map(e => e.textContent)")
    assert any("no profiler trace" in reason for reason in reasons), reasons
    assert any("no memory record" in reason for reason in reasons), reasons
    assert errors == [] and outside == []
    page.close()


def test_sweep_page_tabs_per_machine_and_links_to_configuration_pages(browser, profiled, tmp_path):
    from tfprofscale.sweep.html_page import write_sweep_html

    report = json.loads((profiled / "report.json").read_text())
    records = synthetic_records(report, [8, 16, 32], [1, 2, 4], machines=("machine-a", "machine-b"))
    write_sweep_dir(tmp_path, records)
    write_sweep_html(tmp_path, "two_layer_cnn", records, ["width"])
    page, errors, outside = open_page(browser, tmp_path / "report.html")
    first = assert_visible_charts_drew(page)
    assert first >= 5  # two scaling charts, boxplots, correlation, layer fits, memory
    page.click("button.tab >> nth=1")
    page.wait_for_function("[...document.querySelectorAll('div.chart')].filter(e => e.offsetParent)"
                           ".every(e => e.dataset.drawn)")
    assert assert_visible_charts_drew(page) == first
    links = page.eval_on_selector_all("table.data a", "links => links.map(a => a.getAttribute('href'))")
    assert sorted(links) == sorted(f"html/{r['config_id']}.html" for r in records)
    assert errors == [] and outside == []
    page.close()
    config_page, errors, outside = open_page(browser, tmp_path / links[0])
    assert assert_visible_charts_drew(config_page) >= 6
    assert errors == [] and outside == []
    config_page.close()


def test_audit_page_draws_divergences_fits_and_validation(browser, profiled, tmp_path, capsys):
    report = json.loads((profiled / "report.json").read_text())
    write_sweep_dir(tmp_path / "sweep", synthetic_records(report, [8, 16, 32, 64], [1, 2, 4]))
    assert main(["audit", str(tmp_path / "sweep"), "--out", str(tmp_path / "out"),
                 "--html", str(tmp_path / "audit.html")]) == 0
    page, errors, outside = open_page(browser, tmp_path / "audit.html")
    assert assert_visible_charts_drew(page) >= 5
    titles = page.eval_on_selector_all("section h2", "els => els.map(e => e.textContent)")
    assert titles[:4] == ["Largest divergences", "Counting conventions", "Time fits and residuals",
                          "Held-out validation"]
    assert page.eval_on_selector_all("section:nth-of-type(4) div.missing", "els => els.length") == 0
    assert errors == [] and outside == []
    page.close()


def test_html_to_an_unwritable_path_is_refused_before_any_work(capsys, tmp_path):
    marker = tmp_path / "imported"
    model = tmp_path / "model.py"
    model.write_text(DENSE_TEMPLATE.format(extra=f"open({str(marker)!r}, 'w').close()"))
    line = one_line_error(capsys, "profile", str(model), "--html", str(tmp_path / "no-such-folder" / "p.html"))
    assert line.startswith("error: --html") or "--html" in line
    assert "does not exist" in line and not marker.exists()
    line = one_line_error(capsys, "audit", str(tmp_path / "report.json"), "--html", str(tmp_path))
    assert "is a directory" in line or "does not exist" in line


def test_the_hierarchy_charts_turn_into_treemaps_and_back(browser, profiled):
    # Plotly's restyle buttons on the sunburst chart: Treemap redraws the same data as boxes (a treemap trace),
    # Sunburst draws the rings again; the values do not change with the shape.
    page, errors, _ = open_page(browser, profiled / "report.html")
    chart_id = page.locator("div.chart", has=page.locator("g.trace.sunburst g.slice")).first.get_attribute("id")
    chart = page.locator(f"#{chart_id}")  # by id: after the restyle it has no sunburst to be found by
    rings = chart.locator("g.trace.sunburst g.slice").count()
    chart.locator("g.updatemenu-button", has_text="Treemap").click()
    page.wait_for_function("el => el.querySelectorAll('g.trace.treemap g.slice').length > 0", arg=chart.element_handle())
    assert chart.locator("g.trace.sunburst g.slice").count() == 0
    shapes = page.evaluate("el => el.data.map(trace => trace.type)", chart.element_handle())
    assert shapes and set(shapes) == {"treemap"}
    chart.locator("g.updatemenu-button", has_text="Sunburst").click()
    page.wait_for_function("el => el.querySelectorAll('g.trace.sunburst g.slice').length > 0", arg=chart.element_handle())
    assert chart.locator("g.trace.sunburst g.slice").count() == rings and errors == []
