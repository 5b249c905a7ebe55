"""report.html of a sweep: the figures of plots/ as interactive charts, per-machine tabs, the results table,
and one profile page per configuration (``html/<config_id>.html``), all sharing one plotly.js in ``html/``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tfprofscale.audit.roofline_input import page_roofline
from tfprofscale.profiling.runtime.machine_peaks import cached_peaks
from tfprofscale.report.html.page import (
    Block,
    Column,
    Missing,
    Page,
    Section,
    Table,
    Tabs,
    write_page,
    write_plotly_asset,
)
from tfprofscale.report.html.profile_page import write_profile_page
from tfprofscale.sweep import by_machine, html_charts
from tfprofscale.sweep.by_machine import machine_fingerprint
from tfprofscale.sweep.plots import layer_time_fits, swept_parameters
from tfprofscale.sweep.tables import layer_rows, results_row

PAGES = "html"
RESULT_COLUMNS = [
    Column("batch_size", "Batch", "examples", format="int"),
    Column("step_time_median_ms", "Step time", "median, ms", format="fixed3"),
    Column("step_time_p10_ms", "p10", "ms", format="fixed3"),
    Column("step_time_p90_ms", "p90", "ms", format="fixed3"),
    Column("graph_flops", "FLOPs graph", "per step", format="si"),
    Column("params", "Params", "count", format="int"),
    Column("peak_bytes", "Peak memory", "bytes", format="bytes"),
    Column("estimated_peak_bytes", "Estimated peak", "bytes", format="bytes"),
    Column("status", "Status", format="text"),
    Column("machine", "Machine", format="text"),
]


def write_sweep_html(out_dir: Path, model: str, records: list[dict[str, Any]], grid_names: list[str]) -> Path:
    """report.html and html/<config_id>.html for every profiled configuration; the report's path."""

    write_plotly_asset(out_dir / PAGES)
    roofline_cache: dict[str, Any] = {}
    pages = set()
    for record in records:
        if not record.get("report"):
            continue
        try:  # a report from an older version may lack keys: its page is left out, the sweep's page is not
            roofline, why_not = _roofline(record["report"], roofline_cache, page_roofline)
            write_profile_page(out_dir / PAGES / f"{record['config_id']}.html", record["report"], roofline, why_not,
                               plotly_src="plotly.min.js", links=[("the sweep's report", "../report.html")])
        except (KeyError, TypeError, ValueError):
            continue
        pages.add(record["config_id"])
    page = sweep_page(model, records, grid_names, link_prefix=f"{PAGES}/", pages=pages)
    write_page(out_dir / "report.html", page, plotly_src=f"{PAGES}/plotly.min.js")
    return out_dir / "report.html"


def _roofline(report: dict[str, Any], cache: dict[str, Any], page_roofline: Any) -> tuple[Any, str]:
    """The roofline at the cached peaks, read once for the whole sweep."""
    if "peaks" not in cache:

        cache["peaks"], cache["stale"] = cached_peaks()
    if cache["peaks"] is None:
        return None, f"the roofline needs the machine's measured peaks: {cache['stale']}"
    roofline, why_not = page_roofline(report, cache["peaks"])
    if roofline is not None and cache["stale"]:
        roofline.notes.append(f"The cached peaks are stale ({cache['stale']}).")
    return roofline, why_not


def sweep_page(model: str, records: list[dict[str, Any]], grid_names: list[str], link_prefix: str = "",
               pages: set[str] | None = None) -> Page:
    """The page: per-machine tabs of charts (one pane without tabs for one machine), then the results table."""
    results = [{**results_row(r, grid_names), "config_id": r["config_id"]} for r in records]
    layers = [row for record in records for row in layer_rows(record, grid_names)]
    parameters = grid_names + ["batch_size"]
    found = by_machine.machines(records)
    ok = sum(1 for r in records if r["status"] == "ok")
    page = Page(f"Sweep of {model} — tfprofscale", facts=[
        ("model", model), ("configurations", f"{len(records)} ({ok} profiled, {len(records) - ok} failed)"),
        ("grid", ", ".join(parameters)), ("machines", str(len(found)))])
    if len(found) <= 1:
        page.sections.append(Section("Figures", chart_blocks(results, layers, parameters)))
    else:
        panes = []
        for fingerprint, entry in found.items():
            ids = {r["config_id"] for r in records if machine_fingerprint(r) == fingerprint}
            own = [row for row in results if row["config_id"] in ids]
            panes.append((f"{fingerprint} ({entry['description']}, {entry['count']} configurations)",
                          chart_blocks(own, [row for row in layers if row["config_id"] in ids], parameters)))
        page.sections.append(Section("Figures, machine by machine", [Tabs(panes)],
                                     "Step times from different machines do not belong on one curve: one tab each."))
    linked = pages if pages is not None else {r["config_id"] for r in records if r.get("report")}
    page.sections.append(Section("Results", [results_table(results, grid_names, linked, link_prefix)]))
    return page


def chart_blocks(results: list[dict[str, Any]], layers: list[dict[str, Any]], parameters: list[str]) -> list[Block]:
    """Every figure of plots/ the successful configurations allow, as charts."""
    frame = pd.DataFrame(results)
    if frame.empty or not (frame["status"] == "ok").any():
        return [Missing("Figures", "no configuration was profiled successfully")]
    frame = frame[frame["status"] == "ok"].reset_index(drop=True)
    swept = swept_parameters(frame, parameters)
    blocks: list[Block] = [html_charts.scaling_chart(frame, name, swept) for name in swept]
    if swept:
        blocks.append(html_charts.boxplot_chart(frame, swept))
    else:
        blocks.append(Missing("Scaling", "no parameter takes more than one value among the profiled configurations"))
    correlation = html_charts.correlation_chart(frame, swept)
    blocks.append(correlation or Missing("Correlation", "fewer than two quantities vary across configurations"))
    fits = layer_time_fits(layers)
    blocks.append(html_charts.layer_fit_chart(fits) if fits else
                  Missing("Layer time against FLOPs", "no layer type has two timed layers with different FLOPs"))
    memory = html_charts.memory_chart(frame)
    blocks.append(memory or Missing("Memory estimate against measurement", "no configuration has both a measured "
                                                                           "peak and an estimate"))
    return blocks


def results_table(results: list[dict[str, Any]], grid_names: list[str], profiled: set[str],
                  link_prefix: str) -> Table:
    """One row per configuration, linking to its profile page (those in ``profiled``)."""
    columns = [Column("config", "Configuration", "link to its profile page", format="link")]
    columns += [Column(name, name, "grid", format="text") for name in grid_names]
    rows = []
    for row in results:
        cid = row["config_id"]
        link = [cid, f"{link_prefix}{cid}.html"] if cid in profiled else None
        rows.append({**row, "id": cid, "config": link or [cid, "#"],
                     **{name: None if row.get(name) is None else str(row[name]) for name in grid_names},
                     "status": row["status"] + (f": {row['error']}" if row.get("error") else "")})
    return Table(columns + RESULT_COLUMNS, rows, "Every configuration; click a header to sort, a name to open "
                                                 "its profile page.")
