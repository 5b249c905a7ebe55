"""What the memory and cost-model stages of a profile will need, estimated before they start, against what is free.

Neither stage copies the weights any more (see session_graph and
graph/shape_graph), so what each needs on top of what the process already
holds is:

- the memory stage: the variables the function assigns (copied into the
  Session; an inference function assigns none), the in-step activations
  (every layer's output at once: an upper bound), the weights of the
  largest group of kernels probed alone (workspace_probe runs them in groups
  of at most 256 MiB of weights, or one kernel when it is
  larger), and the imported graph (``BYTES_PER_NODE`` per node, measured
  ~20 KB on ResNet50: Python op objects, the Session's optimized copy);
- the cost model: Grappler's item, cost graph and scheduler, measured
  ~10 KB per node on ResNet50 (1,831 nodes: +20 MB), counted at twice that.

Each figure is rounded up with ``BASE_BYTES``. It fits when it is under
both the memory the kernel reports available (``MemAvailable``) and, with
``--max-memory``, that ceiling less what the process holds now.
"""
from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import Any

from tfprofscale.errors import InputError
from tfprofscale.sizes import format_size, parse_size

BASE_BYTES = 64 * 2**20
BYTES_PER_NODE = 40 * 2**10


@dataclass(frozen=True)
class StageNeed:
    """What a stage is expected to need beyond what the process holds, and its largest parts."""

    stage: str
    bytes: int
    parts: dict[str, int]

    def describe(self) -> str:
        """``about 3.1 GiB (activations 1.2 GiB, probed kernels 1.5 GiB)``."""
        shown = ", ".join(f"{name} {format_size(size)}" for name, size in self.parts.items() if size)
        return f"about {format_size(self.bytes)}" + (f" ({shown})" if shown else "")


def max_memory_bytes(value: Any, option: str = "--max-memory") -> int | None:
    """``--max-memory`` as bytes (an int, or a size such as ``6GiB``); None when not given."""
    if value is None:
        return None
    if isinstance(value, bool) or (isinstance(value, (int, float)) and value <= 0):
        raise InputError(f"{option} {value!r} is not a size: give bytes or a number with a unit (e.g. 6GiB)")
    return int(value) if isinstance(value, (int, float)) else parse_size(str(value), option)


def check_above_floor(max_memory: int | None, given: Any = None) -> None:
    """InputError (exit 2) when ``--max-memory`` is below what the process already needed (its floor so far)."""
    if max_memory is None:
        return
    held = peak_rss_bytes()
    if max_memory < held:
        shown = f"{given} ({format_size(max_memory)})" if isinstance(given, str) else format_size(max_memory)
        raise InputError(f"--max-memory {shown} is below this model's floor: Python, TensorFlow, "
                         f"the built model and its inputs already took {format_size(held)}")


def memory_stage_need(inlined_nodes: int, assigned_bytes: int, activation_bytes: int,
                      largest_probe_group_bytes: int) -> StageNeed:
    """The memory stage's need beyond what the process holds (see the module docstring)."""
    parts = {"activations": activation_bytes, "probed kernels' weights": largest_probe_group_bytes,
             "assigned variables": assigned_bytes, "graph": inlined_nodes * BYTES_PER_NODE}
    return StageNeed("memory", BASE_BYTES + sum(parts.values()), parts)


def cost_model_need(nodes: int) -> StageNeed:
    """The cost model's need beyond what the process holds (see the module docstring)."""
    return StageNeed("cost model", BASE_BYTES + nodes * BYTES_PER_NODE, {"graph": nodes * BYTES_PER_NODE})


def skip_reason(need: StageNeed, max_memory: int | None) -> str | None:
    """One line saying why the stage is skipped, or None when it fits."""
    free = available_bytes()
    held = rss_bytes()
    room, where = (free, "available") if free is not None else (None, "")
    if max_memory is not None and (room is None or max_memory - held < room):
        room, where = max(max_memory - held, 0), f"left under --max-memory {format_size(max_memory)}"
    if room is None or need.bytes <= room:
        return None
    return (f"skipped: the {need.stage} stage would need {need.describe()} and only {format_size(room)} is "
            f"{where} (this process holds {format_size(held)})")


def rss_bytes() -> int:
    """The process's resident memory now."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def available_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    """Memory the kernel can give without swapping (``MemAvailable``); None where it does not say."""
    try:
        with open(meminfo) as lines:
            for line in lines:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
