"""One line per layer whose time is not simply its own kernels': fusions, merges, compiled calls, loops.

The notes are on the layer rows (``time_notes``) and the printed table's
footer, so that a 0.0 or a time that holds another layer's work is never
left unexplained.
"""
from __future__ import annotations

from tfprofscale.profiling.runtime.nested_kernels import TIME_SOURCES
from tfprofscale.records import LayerRow, OpRow


UNSEEN_NOTE = ("no kernel of its own in the trace although the graph counts work: constant-folded by Grappler, "
               "merged into another op, or run but not recorded by the profiler; its own 0.0 is not a measurement")


def add_time_notes(rows: list["LayerRow"], ops: list["OpRow"]) -> None:
    """Append to each row's ``time_notes`` what moved its time or where its time came from."""
    by_layer = {row.name: row for row in rows}
    by_op = {op.name: op for op in ops}
    for op in ops:
        for layer, note in _op_notes(op, by_op):
            row = by_layer.get(layer)
            if row is not None and note not in row.time_notes:
                row.time_notes.append(note)
    for row in rows:
        if row.graph_flops and row.time_us is not None and not row.time_notes \
                and not any(by_op[name].kernel for name in row.timed_ops if name in by_op):
            row.time_notes.append(UNSEEN_NOTE)


def _op_notes(op: "OpRow", by_op: dict[str, "OpRow"]) -> list[tuple[str | None, str]]:
    notes: list[tuple[str | None, str]] = []
    if op.fused_layers:
        charged = op.timed_layer
        others = [layer for layer in op.fused_layers if layer != charged]
        notes.append((charged, f"its {op.kernel} kernel also ran the ops of {', '.join(others)} (fused; the time is "
                               f"here, on the op with the most FLOPs)"))
        notes += [(layer, f"its ops ran inside {charged}'s fused {op.kernel} kernel (time on {charged})")
                  for layer in others]
    if op.merged_into:
        twin = by_op.get(op.merged_into)
        where = twin.layer if twin is not None else None
        notes.append((op.layer, f"its {op.type} ran as {where}'s kernel {op.merged_into} (Grappler merged "
                                f"identical ops; the time is on {where})"))
    if op.time_source in TIME_SOURCES and op.time_source != "kernel":
        notes.append((op.timed_layer, f"{op.type} timed by {op.time_source}: {TIME_SOURCES[op.time_source]}"))
    return notes
