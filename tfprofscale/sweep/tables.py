"""A sweep's tables: the columns and rows of results.csv (one row per configuration) and layers.csv (one
row per layer of each configuration), written atomically."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from tfprofscale import output
from tfprofscale.sweep.by_machine import machine_fingerprint

DOCUMENT_001_COLUMNS = ["Layers", "BatchSize", "ConvSize", "TotalTime", "MeanTime"]
TOTALS_COLUMNS = ["params", "analytic_flops", "analytic_macs", "graph_flops", "activation_bytes",
                  "analytic_memory_bytes", "peak_bytes"]
TRAIN_COLUMNS = ["graph_train_flops", "train_flops", "train_to_forward", "update_flops"]  # mode = train rows
STEP_COLUMNS = ["step_time_median_ms", "step_time_p10_ms", "step_time_p90_ms", "step_time_cv"]
MEMORY_COLUMNS = ["measured_peak_bytes", "weights_bytes", "input_bytes", "estimated_peak_bytes",
                  "tf_estimated_peak_bytes", "allocator_peak_bytes", "in_step_measured_peak_bytes",
                  "in_step_estimated_peak_bytes", "total_measured_peak_bytes",
                  "total_estimated_peak_bytes"]  # from the report's memory record
RESULT_COLUMNS = ["batch_size", "repeat", *DOCUMENT_001_COLUMNS, *TOTALS_COLUMNS, *MEMORY_COLUMNS, *STEP_COLUMNS,
                  "accuracy", "status", "error", "warnings",
                  "host", "machine", *TRAIN_COLUMNS, "model_sha256"]
LAYER_FIELDS = ["name", "type", "output_shape", "params", "analytic_flops", "analytic_macs", "graph_flops",
                "activation_bytes", "time_us", "achieved_gflops", "time_share", "receptive_field", "supported",
                "geometry", "analytic_terms"]
TIME_COLUMN = "step_time_median_ms"


def results_row(record: dict[str, Any], grid_names: list[str]) -> dict[str, Any]:
    """One row of results.csv: grid values, batch, repeat, document 001's columns, totals, status.

    ``TotalTime`` and ``MeanTime`` (seconds, the timed steps' total and
    mean) need the step-time mean in the report; without it they are empty.
    """
    config, report = record["config"], record.get("report")
    totals = report["totals"] if report else {}
    params = report["params"] if report else config
    steps = totals.get("step_time_ms") or {}
    mean_ms = steps.get("mean")
    row = {name: config.get(name) for name in grid_names}
    row.update(batch_size=config["batch_size"], repeat=record["repeat"], Layers=params.get("total_layers"),
               BatchSize=config["batch_size"], ConvSize=params.get("conv_size"),
               TotalTime=None if mean_ms is None else mean_ms * steps["n"] / 1e3,
               MeanTime=None if mean_ms is None else mean_ms / 1e3)
    row.update({column: totals.get(column) for column in (*TOTALS_COLUMNS, *TRAIN_COLUMNS)})
    memory = (report or {}).get("memory") or {}
    row.update({column: memory.get(column) for column in MEMORY_COLUMNS})
    row.update(step_time_median_ms=steps.get("median"), step_time_p10_ms=steps.get("p10"),
               step_time_p90_ms=steps.get("p90"), step_time_cv=steps.get("cv"), accuracy=totals.get("accuracy"),
               status=record["status"], error=record.get("error"),
               warnings=" | ".join(report.get("warnings") or []) if report else None)
    row.update(host=record.get("host"), machine=machine_fingerprint(record), model_sha256=record.get("model_sha256"))
    return row


def layer_rows(record: dict[str, Any], grid_names: list[str]) -> list[dict[str, Any]]:
    """The rows of layers.csv for one configuration (none if it failed)."""
    report = record.get("report")
    if not report:
        return []
    config = record["config"]
    base = {"config_id": record["config_id"], **{name: config.get(name) for name in grid_names},
            "batch_size": config["batch_size"]}
    rows = []
    for layer in report["layers"]:
        row = {**base, **{field: layer.get(field) for field in LAYER_FIELDS}}
        row["output_shape"] = "x".join(str(d) for d in layer["output_shape"])
        row["geometry"] = json.dumps(layer.get("geometry") or {}, sort_keys=True)
        row["analytic_terms"] = json.dumps(layer.get("analytic_terms") or {}, sort_keys=True)
        rows.append(row)
    return rows


def write_tables(out_dir: Path, records: list[dict[str, Any]], grid_names: list[str]) -> None:
    """results.csv and layers.csv of ``records``, each written atomically."""
    results = [results_row(record, grid_names) for record in records]
    layers = [row for record in records for row in layer_rows(record, grid_names)]
    write_csv(out_dir / "results.csv", results, grid_names + RESULT_COLUMNS)
    write_csv(out_dir / "layers.csv", layers, ["config_id", *grid_names, "batch_size", *LAYER_FIELDS])


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """``rows`` as CSV with ``columns`` (None as an empty cell), written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one."""
    output.write_text(path, text)
