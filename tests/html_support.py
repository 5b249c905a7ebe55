"""Helpers for the HTML page tests and tools/bench_html.py: a headless Chromium driven by Playwright, and sweep
records built synthetically from one real profile JSON (numbers scaled, not measured: for rendering only)."""
from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """The system's Chromium (the Debian package), or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def launch(playwright: Any) -> Any:
    """A headless Chromium (the system's, never a downloaded one) with a fresh profile folder, offline."""
    user_data = tempfile.mkdtemp(prefix="tfprofscale-chromium-")
    return playwright.chromium.launch_persistent_context(
        user_data, executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS, offline=True,
        viewport={"width": 1400, "height": 900})


def synthetic_records(profile: dict[str, Any], widths: list[int], batches: list[int],
                      machines: tuple[str, ...] = ("machine-a",)) -> list[dict[str, Any]]:
    """Sweep records over width x batch from one profile: FLOPs and times scaled by width/w0 * batch/b0,
    parameters by width/w0, each configuration with a small deterministic spread; machines alternate."""
    records = []
    for index, (width, batch) in enumerate((w, b) for w in widths for b in batches):
        work = width / widths[0] * batch / batches[0]
        spread = 1 + 0.05 * ((index * 7) % 5 - 2) / 2
        report = _scaled(profile, work * spread, width / widths[0], batch)
        machine = machines[index % len(machines)]
        records.append({"config_id": f"width={width}-batch_size={batch}", "config": {"width": width,
                                                                                     "batch_size": batch},
                        "repeat": 0, "status": "ok", "error": None, "elapsed_s": 1.0, "host": "synthetic",
                        "machine": {"fingerprint": machine, "description": f"synthetic {machine}"},
                        "report": report})
    return records


def _scaled(profile: dict[str, Any], work: float, params: float, batch: int) -> dict[str, Any]:
    report = copy.deepcopy(profile)
    report["batch_size"] = batch
    for layer in report["layers"]:
        for key in ("analytic_flops", "analytic_macs", "graph_flops", "time_us", "tf_estimated_us"):
            if layer.get(key) is not None:
                layer[key] = type(layer[key])(layer[key] * work)
        layer["params"] = int(layer["params"] * params)
    for op in report["ops"]:
        for key in ("graph_flops", "time_us", "tf_estimated_us"):
            if op.get(key) is not None:
                op[key] = type(op[key])(op[key] * work)
    totals = report["totals"]
    for key in ("analytic_flops", "analytic_macs", "graph_flops", "covered_graph_flops", "tfprof_flops"):
        if totals.get(key) is not None:
            totals[key] = int(totals[key] * work)
    totals["params"] = int(totals["params"] * params)
    for key in ("step_time_ms", "traced_step_time_ms"):
        steps = totals.get(key) or {}
        for stat in ("median", "p10", "p90", "min", "mean", "ci_low", "ci_high"):
            if steps.get(stat) is not None:
                steps[stat] *= work
    if totals.get("tf_estimated_step_ms") is not None:
        totals["tf_estimated_step_ms"] *= work
    return report


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


def write_sweep_dir(folder: Path, records: list[dict[str, Any]]) -> Path:
    """A sweep output folder with reports/<config_id>.json, as the sweep writes it."""
    reports = folder / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    for record in records:
        (reports / f"{record['config_id']}.json").write_text(json.dumps(record))
    return folder
