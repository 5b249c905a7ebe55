"""The printed form of a Report: Keras' ``model.summary()`` with cost columns."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from tfprofscale.profiling.runtime.shares import SHARE_DEFINITION
from tfprofscale.records import LayerRow, Report
from tfprofscale.report.fit_width import kept_columns, wrap_footer
from tfprofscale.report.train_table import TRAIN_COLUMNS, mode_header, train_cells, train_lines
from tfprofscale.report.units import INDENT, UNSUPPORTED, UNSUPPORTED_DEFINITION, binary_bytes, short_name, si

if TYPE_CHECKING:
    from tfprofscale.records import StepTimes, Totals

COLUMNS = (
    ("Layer (type)", 30, "<"), ("Output shape", 18, "<"), ("Params", 10, ">"),
    ("FLOPs formula", 14, ">"), ("FLOPs graph", 12, ">"), ("Activations", 12, ">"),
    ("Time us/step", 13, ">"), ("GFLOP/s", 8, ">"), ("Share", 7, ">"), ("Memory", 11, ">"),
)


def _cells(row: LayerRow, traced: bool = True) -> tuple[str, ...]:
    return (
        f"{INDENT * row.depth}{short_name(row)} ({row.type})", "(" + ", ".join(map(str, row.output_shape)) + ")",
        f"{row.params:,}", si(row.analytic_flops) if row.supported else "unsupported",
        si(row.graph_flops), binary_bytes(row.activation_bytes), _time_cell(row, traced),
        "" if row.achieved_gflops is None else f"{row.achieved_gflops:.2f}",
        "" if row.time_share is None or not row.ops else f"{100 * row.time_share:.1f}%",
        "" if row.measured_bytes is None else binary_bytes(row.measured_bytes),
    )


#: Time cells that are not a number, each defined in the footer when the table shows it.
NOT_TRACED, UNSEEN, NO_OP = "not traced", "–", "no op"
TIME_DEFINITIONS = {
    NOT_TRACED: "not traced: no profiler trace was taken (--no-trace), so no layer has a time",
    UNSEEN: "–: the trace saw no kernel of this layer's ops (fused into another layer's kernel, or not recorded): "
            "its time is unknown, not 0",
    NO_OP: "no op: no computing op of the layer is in the graph (an identity or a reshape at inference): it takes "
           "no kernel time",
}


def _time_cell(row: LayerRow, traced: bool) -> str:
    """The layer's time per step; a word, defined in the footer, when there is no number."""
    if not traced:
        return NOT_TRACED
    if not row.ops:
        return NO_OP
    return UNSEEN if row.time_us is None else f"{row.time_us:,.1f}"


def _columns_for(rows: list[LayerRow], columns: tuple[tuple[str, int, str], ...] = COLUMNS,
                 cells: Callable[[LayerRow], tuple[str, ...]] = _cells) -> tuple[tuple[str, int, str], ...]:
    """``columns`` with the first widened to the longest (indented) layer cell."""
    (title, width, align), *rest = columns
    longest = max((len(cells(row)[0]) for row in rows), default=width)
    return ((title, max(width, longest), align), *rest)


def _layer_lines(rows: list[LayerRow], columns: tuple[tuple[str, int, str], ...] = COLUMNS,
                 cells: Callable[[LayerRow], tuple[str, ...]] = _cells, kept: list[int] | None = None) -> list[str]:
    """One line per row, with a header line where a nested model (which has no row of its own) begins."""
    lines: list[str] = []
    shown: set[str] = {row.name for row in rows}
    for row in rows:
        for depth, parent in enumerate(_ancestors(row.parent)):
            if parent not in shown:
                shown.add(parent)
                name = parent.rsplit("/", 1)[-1] if depth else parent
                lines.append(f"{INDENT * depth}{name}/")
        lines.append(_line(_pick(cells(row), kept), columns))
    return lines


def _pick(items: tuple, kept: list[int] | None) -> tuple:
    return items if kept is None else tuple(items[i] for i in kept)


def _ancestors(parent: str | None) -> list[str]:
    """``a/b/c`` -> ``[a, a/b, a/b/c]``."""
    if not parent:
        return []
    parts = parent.split("/")
    return ["/".join(parts[:i + 1]) for i in range(len(parts))]


def _line(cells: tuple[str, ...], columns: tuple[tuple[str, int, str], ...] = COLUMNS) -> str:
    return " ".join(f"{cell:{align}{width}}" for cell, (_, width, align) in zip(cells, columns)).rstrip()


def render(report: Report, max_width: int | None = None) -> str:
    """The whole report as text: header, per-layer table, totals; fitted to ``max_width`` (None: every column)."""
    traced = report.totals.traced_step_time_ms is not None
    train = report.mode == "train"
    cells = train_cells if train else (lambda row: _cells(row, traced))
    all_columns = _columns_for(report.layers, TRAIN_COLUMNS if train else COLUMNS, cells)
    kept = kept_columns([title for title, _, _ in all_columns], [w for _, w, _ in all_columns], max_width)
    columns = _pick(all_columns, kept)
    width = sum(width + 1 for _, width, _ in columns) - 1
    header = (f'Model "{report.model}"  batch {report.batch_size}  on {report.device}'
              f"  TensorFlow {report.tensorflow}{mode_header(report)}")
    lines = [header, "=" * width, _line(tuple(name for name, _, _ in columns), columns), "-" * width]
    table = _layer_lines(report.layers, columns, cells, kept)
    lines += table + ["=" * width]
    footer = _totals_lines(report) + train_lines(report)
    if any(UNSUPPORTED in line for line in lines + footer):
        footer.append(f"Note:          {UNSUPPORTED_DEFINITION}")
    footer += [f"Note:          {text}" for word, text in TIME_DEFINITIONS.items()
               if any(_time_cell(row, traced) == word for row in report.layers)]
    if len(kept) < len(all_columns):
        hidden = ", ".join(title for i, (title, _, _) in enumerate(all_columns) if i not in kept)
        footer.append(f"Hidden:        {hidden} (to fit {max_width} columns; --wide, --json and --csv have them)")
    return "\n".join(lines + wrap_footer(footer, max_width))


def _totals_lines(report: Report) -> list[str]:
    t = report.totals
    steps = t.step_time_ms
    lines = [
        f"Params:        {t.params:,}",
        f"FLOPs:         formulas {si(t.analytic_flops)}  graph {si(t.graph_flops)}   (multiply-add = 2)",
        *_coverage_lines(t),
        f"MACs:          formulas {si(t.analytic_macs)}",
        *_memory_lines(report),
        f"Step time:     median {steps.median:.3f} ms  p10 {steps.p10:.3f}  p90 {steps.p90:.3f}"
        f"  min {steps.min:.3f}  cv {100 * steps.cv:.1f}%  n={steps.n}",
        *_conditions_lines(steps),
    ]
    if t.tf_estimated_step_ms is not None:
        lines.append(f"TF estimate:   {t.tf_estimated_step_ms:.3f} ms per step (TensorFlow's cost model, Grappler, "
                     "at this machine's measured peaks)")
    if t.unsupported_layers:
        lines.append(f"No formula:    {', '.join(t.unsupported_layers)} (excluded from formula totals)")
    if t.traced_step_time_ms is not None:
        lines += _profiler_lines(t)
    if t.accuracy is not None:
        lines.append(f"Accuracy:      {100 * t.accuracy:.2f}% on the test split")
    if report.trace_dir:
        lines.append(f"Trace:         {report.trace_dir}  (tensorboard --logdir {_logdir_of(report.trace_dir)}, "
                     "Profile tab)")
    lines += _time_note_lines(report.layers)
    lines += [f"Warning:       {warning}" for warning in report.warnings]
    return lines


def _time_note_lines(rows: list[LayerRow]) -> list[str]:
    """Where a layer's time came from when not only from its own kernels (fusions, merges, loops, calls)."""
    notes = [f"{row.name}: {note}" for row in rows for note in getattr(row, "time_notes", [])]
    return [f"{'Time notes:' if i == 0 else '':<15}{note}" for i, note in enumerate(notes)]


def _coverage_lines(t: Any) -> list[str]:
    """Formula coverage, the like-with-like ratio, who counted the graph FLOPs and what nobody counted."""
    lines = []
    if t.formula_coverage is not None:
        lines.append(f"Coverage:      layers with a formula hold {100 * t.formula_coverage:.1f}% of graph FLOPs;"
                     f" over those layers formulas {si(t.analytic_flops)} vs graph {si(t.covered_graph_flops)}"
                     + _ratio(t.analytic_flops, t.covered_graph_flops))
    sources = getattr(t, "graph_flops_by_source", None) or {}
    if sources.get("tfprofscale") or (t.tfprof_flops is not None and t.tfprof_flops != t.graph_flops):
        lines.append(f"Graph FLOPs:   tfprof on the top-level graph {si(t.tfprof_flops)}; with function bodies,"
                     f" loop trips and pruned ops: TensorFlow's statistics {si(sources.get('tfprof', 0))}"
                     f" + ours {si(sources.get('tfprofscale', 0))} (Einsum, 3-D pooling)")
    if t.uncounted_op_types:
        named = ", ".join(f"{op_type} x{count}" for op_type, count in sorted(t.uncounted_op_types.items()))
        lines.append(f"Not counted:   {named} (no FLOPs statistics: not in the graph figure)")
    return lines


def _memory_lines(report: Report) -> list[str]:
    """Measured peak, where it happens, and the estimates beside it (see tfprofscale.profiling.memory.measure)."""
    m, t = report.memory, report.totals
    if m is None:
        return [f"Memory:        allocator peak {binary_bytes(t.peak_bytes)} (process-wide)"]
    if m.measured_peak_bytes is None:
        lines = [f"Memory:        not measured: {m.missing}"]
    else:
        where = f"{m.peak_layer or 'no layer'} (op {m.peak_op})" if m.peak_op else UNSUPPORTED
        held = "variables (weights, optimizer state)" if report.mode == "train" else "weights"
        lines = [f"Memory:        peak {binary_bytes(t.peak_bytes)} = {held} {binary_bytes(m.weights_bytes)}"
                 f" + input {binary_bytes(m.input_bytes)} + in-step {binary_bytes(m.measured_peak_bytes)},"
                 f" at {where}"]
    in_step = getattr(m, "in_step_estimated_peak_bytes", None)
    lines.append(f"               estimates: formula total {binary_bytes(m.estimated_peak_bytes)}"
                 + ("" if in_step is None else f" = weights + input + in-step {binary_bytes(in_step)}")
                 + f" (peak at {m.estimated_peak_layer or UNSUPPORTED})"
                 f"  TensorFlow (Grappler, static) {binary_bytes(m.tf_estimated_peak_bytes)}")
    lines.append(f"               allocator (process-wide): peak {binary_bytes(m.allocator_peak_bytes)},"
                 f" resident before the step {binary_bytes(m.allocator_resident_bytes)}")
    if m.memory_trace:
        lines.append(f"Memory trace:  {m.memory_trace}  (BFC CPU allocator, untimed: TensorBoard's Memory Profile)")
    return lines


def _conditions_lines(steps: "StepTimes") -> list[str]:
    """How the step time was measured: rounds, the median's interval, threads, load."""
    if not steps.rounds:
        return []
    width = steps.ci_width
    interval = ("" if width is None else f"; median {100 * (steps.ci_confidence or 0):.0f}% interval "
                f"{steps.ci_low:.3f}-{steps.ci_high:.3f} ms ({100 * width:.1f}% wide)")
    threads = steps.threads or {}
    load = ("" if steps.load_start is None or steps.load_end is None
            else f"; load average {steps.load_start:.2f} -> {steps.load_end:.2f}")
    return [f"Timing:        {steps.rounds} rounds x {steps.steps_per_round} steps{interval}, stopped by "
            f"{steps.stopped_by}", *_processes_lines(steps),
            f"Conditions:    threads intra-op {threads.get('intra_op') or 'default'}, inter-op "
            f"{threads.get('inter_op') or 'default'} ({threads.get('cpus')} CPUs){load}"]


def _processes_lines(steps: "StepTimes") -> list[str]:
    """Which interval that is: within one process, or between the processes that timed the step."""
    if steps.interval_scope != "between processes":
        return ["               the interval is within one process: another process's median may fall outside "
                "it (--processes N gives one between processes)"]
    medians = ", ".join(f"{entry['median']:.3f}" if "median" in entry else f"died ({entry['failed']})"
                        for entry in steps.processes or [])
    return [f"Processes:     {steps.processes_contributed} of {steps.processes_requested} timed the step "
            f"(medians {medians} ms); the interval is the 95% range of the median another run of this command "
            f"reports, the step statistics are medians over the processes"]


def _profiler_lines(t: "Totals") -> list[str]:
    """The traced steps: overhead, kernel time, busy time, coverage, concurrency, and what Share means."""
    overhead = UNSUPPORTED if t.profiler_overhead is None else f"x{t.profiler_overhead:.2f}"
    lines = [f"Profiler:      traced step median {t.traced_step_time_ms.median:.3f} ms, overhead {overhead}"]
    if t.kernel_time_us is not None and t.busy_time_us is not None:
        coverage = "" if t.kernel_coverage is None else f" ({100 * t.kernel_coverage:.0f}% of the traced step)"
        concurrency = "" if t.concurrency is None else f"; concurrency x{t.concurrency:.2f}"
        lines.append(f"Kernels:       busy {t.busy_time_us:,.1f} us/step{coverage}; self times sum to "
                     f"{t.kernel_time_us:,.1f} us/step{concurrency} (medians over the traced steps)")
    lines.append(f"               {SHARE_DEFINITION}")
    return lines


def _logdir_of(trace_dir: str) -> str:
    """The TensorBoard logdir of a run's trace folder (``<logdir>/<run>/plugins/profile/<stamp>``)."""
    parts = Path(trace_dir).parts
    if "plugins" in parts:
        return str(Path(*parts[:parts.index("plugins")]).parent) or "."
    return trace_dir


def _ratio(analytic: int | None, graph: int | None) -> str:
    if not analytic or not graph:
        return ""
    return f"  formulas/graph {analytic / graph:.3f}"
