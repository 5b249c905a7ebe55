"""The layer table of the HTML profile page: every printed column with its unit, nested models as group rows."""
from __future__ import annotations

from typing import Any

from tfprofscale.report.html.page import Column, Table

LAYER_COLUMNS = [
    Column("short", "Layer", format="text", title="layer name inside its parent; hover a row for its path and kernels"),
    Column("type", "Type", format="text"),
    Column("output_shape", "Output shape", "batch first", format="shape"),
    Column("params", "Params", "count", format="int"),
    Column("analytic_flops", "FLOPs formula", "per step, multiply-add = 2", format="si", empty="unsupported"),
    Column("graph_flops", "FLOPs graph", "per step (TensorFlow)", format="si", empty="unsupported"),
    Column("activation_bytes", "Activations", "bytes (output)", format="bytes"),
    Column("time_us", "Time", "µs / step", format="fixed1", empty="unsupported"),
    Column("achieved_gflops", "GFLOP/s", "graph FLOPs / time", format="fixed2"),
    Column("time_share", "Share", "% of layer time", format="percent"),
    Column("measured_bytes", "Memory", "bytes allocated in step", format="bytes"),
]
#: Columns shown only when some layer has the key (training steps, TensorFlow's cost model).
OPTIONAL_COLUMNS = [
    Column("tf_estimated_us", "TF estimate", "µs / step (Grappler)", format="fixed1"),
    Column("forward_flops", "Forward FLOPs", "per step", format="si"),
    Column("input_grad_flops", "Input-grad FLOPs", "per step", format="si"),
    Column("weight_grad_flops", "Weight-grad FLOPs", "per step", format="si"),
    Column("forward_time_us", "Forward time", "µs / step", format="fixed1"),
    Column("backward_time_us", "Backward time", "µs / step", format="fixed1"),
]
ADDITIVE = ("params", "analytic_flops", "graph_flops", "activation_bytes", "time_us", "time_share", "measured_bytes",
            "tf_estimated_us", "forward_flops", "input_grad_flops", "weight_grad_flops", "forward_time_us",
            "backward_time_us")


def layer_table(report: dict[str, Any], kernels_by_layer: dict[str, list[str]]) -> Table:
    """The sortable, filterable table of every layer; a nested model without a row of its own gets a group row."""
    layers = report.get("layers") or []
    columns = LAYER_COLUMNS + [c for c in OPTIONAL_COLUMNS if any(row.get(c.key) is not None for row in layers)]
    rows = [_row(layer, kernels_by_layer.get(layer["name"], [])) for layer in layers]
    known = {row["id"] for row in rows}
    groups: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for depth, path in enumerate(ancestors(layer.get("parent"))):
            if path not in known and path not in groups:
                groups[path] = _group_row(path, depth)
    for row in rows:  # every row adds into its group ancestors
        for path in ancestors(row["parent"]):
            if path in groups:
                _add_into(groups[path], row)
    ordered: list[dict[str, Any]] = []
    placed: set[str] = set()
    for row in rows:
        for path in ancestors(row["parent"]):
            if path in groups and path not in placed:
                placed.add(path)
                ordered.append(groups[path])
        ordered.append(row)
    caption = ("Click a header to sort (within each parent), type to filter (then rows show their full paths), "
               "▾ collapses a nested model. 'unsupported': that source has no number here (no formula, no FLOPs "
               "statistics, or no time without a trace); never 0. Share: the layer's kernel time over all "
               "layers' kernel time.")
    return Table(columns, ordered, caption)


def ancestors(parent: str | None) -> list[str]:
    """``a/b/c`` -> ``[a, a/b, a/b/c]``."""
    if not parent:
        return []
    parts = parent.split("/")
    return ["/".join(parts[:i + 1]) for i in range(len(parts))]


def short_name(name: str, parent: str | None) -> str:
    """A nested layer's name inside its parent."""
    prefix = f"{parent}/" if parent else ""
    return name[len(prefix):] if prefix and name.startswith(prefix) else name


def _row(layer: dict[str, Any], kernels: list[str]) -> dict[str, Any]:
    row = {key: layer.get(key) for key in ADDITIVE + ("type", "output_shape", "achieved_gflops")}
    if not layer.get("supported", True):
        row["analytic_flops"] = None
    hover = f"{layer['name']} ({layer.get('type')})"
    if kernels:
        hover += "\nkernels: " + "; ".join(kernels)
    return {**row, "id": layer["name"], "parent": layer.get("parent"), "depth": layer.get("depth", 0),
            "short": short_name(layer["name"], layer.get("parent")), "hover": hover}


def _group_row(path: str, depth: int) -> dict[str, Any]:
    parent = path.rsplit("/", 1)[0] if "/" in path else None
    return {"id": path, "parent": parent, "depth": depth, "short": path.rsplit("/", 1)[-1] + "/",
            "type": "(nested model)", "group": True, "hover": f"{path}: sums over the layers inside",
            **{key: None for key in ADDITIVE}}


def _add_into(group: dict[str, Any], row: dict[str, Any]) -> None:
    for key in ADDITIVE:
        if row.get(key) is not None:
            group[key] = (group[key] or 0) + row[key]
