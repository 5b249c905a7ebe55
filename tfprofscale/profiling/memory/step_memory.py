"""Allocation records of one traced step, read from ``RunMetadata.step_stats``.

TensorFlow's executor logs, for every op of a ``FULL_TRACE`` Session run,
the allocations it made on each allocator (``alloc_micros``, ``alloc_bytes``;
a free is the same buffer's record with negative bytes, logged under the op
that allocated it) and the sizes of its outputs. Sorted by time, the running
sum of those records is the memory the step itself needs (its transient
memory), small tensors included. Constants are logged as persistent
memory, not as records, and variables not at all (the model's variables are
read from the model); the fed inputs are not logged either.

Records are kept per memory space: ``host`` (the CPU allocators: ``cpu``,
``mklcpu``, ``cuda_host_bfc`` ...) and ``device`` (a GPU's allocator,
``GPU_0_bfc``), so that one traced GPU step gives the GPU's peak and the
host's side by side.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

HOST, DEVICE = "host", "device"


@dataclass(frozen=True)
class Allocation:
    """One allocation record: when, how many bytes (negative: the free), which op and tensor, which allocator."""

    micros: int
    bytes: int
    op: str
    tensor: str
    allocator: str
    device: str
    op_type: str = ""

    @property
    def is_workspace(self) -> bool:
        """A kernel's temporary, or a max-pool's workspace output (slot 1)."""
        return self.tensor.endswith(" (temporary)") or "MaxPool" in self.op_type and self.tensor.endswith(":1")

    @property
    def space(self) -> str:
        """``device`` for a GPU allocator, ``host`` for every CPU-side allocator."""
        return memory_space(self.allocator)


@dataclass
class SpacePeak:
    """The running-sum peak of one memory space over a step, and the allocations live at it."""

    space: str
    peak_bytes: int
    peak_op: str | None
    live: list[Allocation] = field(default_factory=list)


@dataclass
class StepMemory:
    """Everything the allocation records of one step say, per memory space."""

    allocations: list[Allocation]
    persistent_bytes: dict[str, int]

    def peak(self, space: str) -> SpacePeak:
        """The in-step transient peak of ``space`` (``host`` or ``device``)."""
        return running_peak([a for a in self.allocations if a.space == space], space)

    def spaces(self) -> list[str]:
        """The memory spaces that have records, host first."""
        present = {a.space for a in self.allocations}
        return [space for space in (HOST, DEVICE) if space in present]


def memory_space(allocator: str) -> str:
    """``device`` for a GPU allocator (``GPU_0_bfc``, ``gpu_bfc``), else ``host``."""
    lowered = allocator.lower()
    return DEVICE if lowered.startswith("gpu") and "host" not in lowered else HOST


def step_memory(run_metadata: Any) -> StepMemory:
    """Allocation records and persistent bytes (per memory space) of a traced step."""
    allocations: list[Allocation] = []
    persistent: dict[str, int] = defaultdict(int)
    for device_stats in run_metadata.step_stats.dev_stats:
        for node in device_stats.node_stats:
            allocations += node_allocations(node, device_stats.device)
            persistent[_node_space(node)] += node.memory_stats.persistent_memory_size
    return StepMemory(allocations, dict(persistent))


def _node_space(node: Any) -> str:
    allocators = [output.tensor_description.allocation_description.allocator_name for output in node.output]
    allocators += [memory.allocator_name for memory in node.memory]
    return memory_space(allocators[0]) if allocators else HOST


def node_allocations(node: Any, device: str) -> Iterable[Allocation]:
    """One op's allocation records, each named after the output it became or as a temporary."""
    op_type = node.timeline_label.partition(" = ")[2].partition("(")[0].strip()
    outputs = defaultdict(list)
    for output in node.output:
        description = output.tensor_description.allocation_description
        outputs[(description.allocator_name, description.requested_bytes)].append(f"{node.node_name}:{output.slot}")
    for memory in node.memory:
        live: dict[int, list[str]] = defaultdict(list)
        for record in sorted(memory.allocation_records, key=lambda r: r.alloc_micros):
            size = record.alloc_bytes
            if size > 0:
                names = outputs.get((memory.allocator_name, size))
                name = names.pop(0) if names else f"{node.node_name} (temporary)"
                live[size].append(name)
            else:
                name = live[-size].pop(0) if live[-size] else f"{node.node_name} (freed)"
            yield Allocation(record.alloc_micros, size, node.node_name, name, memory.allocator_name, device,
                             op_type)


def running_peak(allocations: list[Allocation], space: str = HOST) -> SpacePeak:
    """The largest running sum of the time-ordered records, and what is live at it.

    At equal times allocations come before frees, so a buffer freed in the
    same microsecond another is made counts as overlapping (an upper bound).
    """
    ordered = sorted(allocations, key=lambda a: (a.micros, a.bytes < 0))
    total, best, best_index = 0, 0, -1
    for index, allocation in enumerate(ordered):
        total += allocation.bytes
        if total > best:
            best, best_index = total, index
    if best_index < 0:
        return SpacePeak(space, 0, None)
    return SpacePeak(space, best, ordered[best_index].op, _live(ordered[: best_index + 1]))


def _live(prefix: list[Allocation]) -> list[Allocation]:
    """Allocations of ``prefix`` not freed within it, largest first."""
    open_: dict[tuple[str, str, int], list[Allocation]] = defaultdict(list)
    for allocation in prefix:
        key = (allocation.op, allocation.allocator, abs(allocation.bytes))
        if allocation.bytes > 0:
            open_[key].append(allocation)
        elif open_[key]:
            open_[key].pop(0)
    return sorted((a for group in open_.values() for a in group), key=lambda a: -a.bytes)
