"""The measured transient peak of one traced train step, with variables' copy-on-write buffers paired.

A train step's allocation records (``step_memory.Allocation``) show one
thing a plain running sum misreads: when a variable's update
(``AssignSubVariableOp`` ...) runs while the value read in the forward is
still referenced (a kernel kept for the layer's input gradient), TensorFlow
copies the variable into a new buffer -- a "temporary" of the assign op that
is never freed in the step (it is the variable's storage from then on). The
old buffer is freed when its last reader finishes, but it was allocated in an
earlier step, so that free is not in the records: the plain running sum keeps
every copy to the end of the step (on ResNet50 with SGD, 69 MB of copies
against a 48 MB transient peak without them).

``measured_train_peak`` pairs each copy with its old buffer's release: the
copy has the variable's size, so the weight gradient it applies is the
latest earlier gradient-op output of exactly that size, and its layer's scope
(``gradient_tape/<model>/<layer>/``) names the op that still reads the old
value, the layer's input gradient (``_release_micros``). The old buffer is
counted freed when that op has finished, as far as the records tell (the
first free of an older gradient tensor after it started and after the copy).
A copy with no such op stays live to the end (the safe side). This pairing is
an approximation read off op names; ``records_peak_bytes`` (every copy live to
the end) is the upper bound, and ``transient_peak_bytes`` minus the copies
live at the peak a lower one.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from tfprofscale.profiling.memory.ledger import BACKWARD, OPTIMIZER_SCOPE, op_phase
from tfprofscale.profiling.memory.step_memory import Allocation
from tfprofscale.records import MeasuredTrainPeak

VARIABLE_COPY = "variable copies"
_ASSIGN = re.compile(r"Assign(Sub|Add)?VariableOp(_\d+)?$")


def is_variable_copy(allocation: Allocation) -> bool:
    """A copy-on-write of a variable by its update: a positive temporary of an ``Assign*VariableOp``."""
    return allocation.bytes > 0 and allocation.tensor.endswith(" (temporary)") and bool(_ASSIGN.search(allocation.op))


def measured_train_peak(allocations: Sequence[Allocation],
                        optimizer_scope: re.Pattern[str] = OPTIMIZER_SCOPE) -> MeasuredTrainPeak:
    """The step's transient peak with copies paired (module docstring), and the plain running-sum peak."""
    ordered = sorted(allocations, key=lambda a: (a.micros, a.bytes < 0))
    events = [(a.micros, a.bytes, a, None) for a in ordered]
    copies = 0
    for i, allocation in enumerate(ordered):
        if is_variable_copy(allocation):
            copies += allocation.bytes
            release = _release_micros(ordered, i)
            if release is not None:
                events.append((release, -allocation.bytes, allocation, "release"))
    events.sort(key=lambda e: (e[0], e[1] < 0))
    peak, at = _running_peak(events)
    records_peak, _ = _running_peak([(a.micros, a.bytes, a, None) for a in ordered])
    live: Counter[str] = Counter()
    for _, size, allocation, _ in events[:at + 1]:
        live[_term(allocation, optimizer_scope)] += size
    peak_op = events[at][2].op if events else ""
    return MeasuredTrainPeak(transient_peak_bytes=peak, records_peak_bytes=records_peak,
                             phase=op_phase(peak_op, optimizer_scope) if events else "",
                             op=peak_op, variable_copy_bytes=copies,
                             live={term: size for term, size in sorted(live.items()) if size})


def _term(allocation: Allocation, optimizer_scope: re.Pattern[str]) -> str:
    return VARIABLE_COPY if _ASSIGN.search(allocation.op) else op_phase(allocation.op, optimizer_scope)


def _running_peak(events: list) -> tuple[int, int]:
    total, best, index = 0, 0, 0
    for i, (_, size, _, _) in enumerate(events):
        total += size
        if total > best:
            best, index = total, i
    return best, index


def _release_micros(ordered: Sequence[Allocation], copy_index: int) -> int | None:
    """When the copied variable's old value is released: when the layer's input gradient has finished.

    The weight gradient applied is the latest earlier gradient-op output of the copy's size; the input
    gradient is the next op of that layer's scope to allocate after it (it starts with its output). Its end is
    not in the records; what it frees is: its input dL/d output, whose last reader it is once the weight
    gradient is done. So the release is the first free, after both the copy and that start, of a gradient
    tensor allocated before that start."""
    copy = ordered[copy_index]
    weight_gradient = next((j for j in range(copy_index - 1, -1, -1) if ordered[j].bytes == copy.bytes
                            and op_phase(ordered[j].op) == BACKWARD), None)
    if weight_gradient is None:
        return None
    scope, applied = _layer_scope(ordered[weight_gradient].op), ordered[weight_gradient].op
    start = next((k for k in range(weight_gradient + 1, len(ordered)) if ordered[k].bytes > 0
                  and ordered[k].op.startswith(scope) and ordered[k].op != applied), None)
    if start is None:
        return None
    before = {(a.op, a.tensor) for a in ordered[:start] if a.bytes > 0 and op_phase(a.op) == BACKWARD}
    return next((a.micros for a in ordered[max(start, copy_index) + 1:]
                 if a.bytes < 0 and (a.op, a.tensor) in before), None)


def _layer_scope(op: str) -> str:
    """``gradient_tape/<model>/<layer>/`` of a gradient op (or its whole name when shorter)."""
    parts = op.split("/")
    return "/".join(parts[:3]) + "/" if len(parts) > 3 else op
