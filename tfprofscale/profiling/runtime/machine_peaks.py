"""The machine's measured peaks (FLOP/s, streaming and cache bytes/s) and traits (vector width, caches).

Machine peaks: the best of a few runs of a large float32 matmul (FLOP/s),
of a sum over a float32 array 4x the last-level cache (bytes read per
second from memory) and of a sum over an array half the L2 cache, already
in it (bytes read per second from cache: the best time minus the best time
of the same sum over one element, the op's fixed cost), with TensorFlow, cached in
``${XDG_CACHE_HOME:-~/.cache}/tfprofscale/machine.json`` with the host,
TensorFlow version, thread settings and load average they were measured
under. A cached value is measured again (``stale_reason``) when it is older
than ``MAX_AGE`` (a day), when the host, TensorFlow, the thread settings or
the method changed, or when the load average was high while it was measured
(a busy machine gives low peaks, which then make honest kernels look
impossibly fast); ``audit --remeasure`` forces it. Peaks measured under load
are never cached: the run that measured them uses them and warns
(``under_load_warning``: in the profile's warnings, on ``audit --remeasure``'s
stderr), the next run measures again. A copy ``y = x
+ 1`` is not used: TensorFlow reaches ~9 GB/s with it on the machine this
was written on (a fresh output is allocated and faulted in each time), less
than real kernels stream (a Dense layer read 67 MB of weights at 22 GB/s),
so its bound would flag honest kernels; the reduction reaches ~30 GB/s. Machine traits
(``machine_traits``): the float32 vector width and the L2 / L3 cache sizes,
read from the CPU's description (Linux ``/proc`` and ``/sys``).
"""
from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from tfprofscale.profiling.runtime.measurement_checks import HIGH_LOAD_PER_CPU
from tfprofscale.profiling.runtime.timing import current_threads, load_average

MATMUL_SIDE = 2048
STREAM_ELEMENTS = 32 * 1024 * 1024  # 128 MB of float32: 4x a 32 MB L3
PEAK_REPEATS = 10
CACHE_REPEATS = 200
PEAK_METHOD = ("best of 10: float32 matmul 2048x2048 (FLOP/s), sum over 128 MB of float32 (bytes/s); best of 200: "
               "sum over half the L2 cache minus a sum over one element (cache bytes/s)")
FLAG_MARGIN = 1.5
MAX_AGE = timedelta(days=1)


@dataclass(frozen=True)
class MachinePeaks:
    """The machine's best measured compute and memory speeds."""

    flops_per_s: float
    bytes_per_s: float
    host: str
    tensorflow: str
    cache_bytes: int | None = None
    method: str = ""
    measured_at: str = ""
    threads: dict[str, Any] | None = None
    load_start: float | None = None
    load_end: float | None = None
    cache_bytes_per_s: float | None = None

    @property
    def ridge_flops_per_byte(self) -> float:
        """Arithmetic intensity where the memory roof meets the compute roof."""
        return self.flops_per_s / self.bytes_per_s

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict (also the cache file's content)."""
        return asdict(self)

    def lines(self) -> list[str]:
        """Text-report lines."""
        load = "" if self.load_start is None or self.load_end is None else f", load {self.load_start:.2f} -> {self.load_end:.2f}"
        return [f"Machine peaks ({self.host}, TensorFlow {self.tensorflow}, measured {self.measured_at or '?'}"
                f"{load}): {self.flops_per_s / 1e9:.1f} GFLOP/s (float32 matmul), "
                f"{self.bytes_per_s / 1e9:.1f} GB/s (streaming read), "
                + ("cache read unmeasured" if self.cache_bytes_per_s is None
                   else f"{self.cache_bytes_per_s / 1e9:.1f} GB/s (read from cache)") + "; ridge at "
                f"{self.ridge_flops_per_byte:.1f} FLOP/byte"]


@dataclass(frozen=True)
class MachineTraits:
    """What shapes a kernel's speed beyond its peaks: vector width and cache sizes (None: unknown)."""

    vector_floats: int
    l2_bytes: int | None
    l3_bytes: int | None


def machine_traits() -> MachineTraits:
    """This CPU's float32 lanes per vector (16 AVX-512, 8 AVX, 4 otherwise) and its L2 / L3 sizes."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    lanes = 16 if "avx512f" in flags else 8 if "avx" in flags else 4
    return MachineTraits(lanes, _cache_bytes(2), _cache_bytes(3))


def _cache_bytes(level: int) -> int | None:
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if int((index / "level").read_text()) == level:
                size = (index / "size").read_text().strip()
                return int(size[:-1]) * {"K": 1024, "M": 1024 ** 2}[size[-1]] if size[-1] in "KM" else int(size)
        except (OSError, ValueError):
            return None
    return None


def cache_path() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/tfprofscale/machine.json``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tfprofscale" / "machine.json"


def machine_peaks(refresh: bool = False) -> MachinePeaks:
    """This machine's peaks: from the cache unless ``stale_reason`` says otherwise, else measured and cached."""
    if not refresh:
        cached = _read_cache(cache_path())
        if cached is not None and stale_reason(cached, _conditions()) is None:
            return cached
    peaks = measure_peaks()
    if load_reason(peaks) is None:
        _write_cache(cache_path(), peaks)
    return peaks


def under_load_warning(peaks: MachinePeaks) -> str | None:
    """The warning for peaks measured under load (used once, never cached); None for peaks measured quietly."""
    busy = load_reason(peaks)
    if busy is None:
        return None
    return (f"the machine's peaks were {busy}: {peaks.flops_per_s / 1e9:.1f} GFLOP/s and "
            f"{peaks.bytes_per_s / 1e9:.1f} GB/s are likely too low; used by this run only, not cached "
            "(measured again next time)")


def load_reason(peaks: MachinePeaks) -> str | None:
    """``measured under load (...)`` when the load average while measuring was high, else None."""
    loads = [load for load in (peaks.load_start, peaks.load_end) if load is not None]
    cpus = (peaks.threads or {}).get("cpus") or os.cpu_count() or 1
    if loads and max(loads) > HIGH_LOAD_PER_CPU * cpus:
        return f"measured under load (load average {max(loads):.2f} on {cpus} CPUs)"
    return None


def fresh_cached_peaks() -> MachinePeaks | None:
    """The cached peaks if still valid, else None (never measures)."""
    cached = _read_cache(cache_path())
    return cached if cached is not None and stale_reason(cached, _conditions()) is None else None


def cached_peaks() -> tuple[MachinePeaks | None, str | None]:
    """The cached peaks however old and why they are stale (None: fresh); (None, why) without a cache. Never measures."""
    cached = _read_cache(cache_path())
    if cached is None:
        return None, (f"no cached machine peaks in {cache_path()} (`audit` measures them, and caches them when "
                      "the machine is quiet)")
    return cached, stale_reason(cached, _conditions())


def stale_reason(cached: MachinePeaks, now: dict[str, Any]) -> str | None:
    """Why cached peaks no longer hold under the conditions ``now`` (see ``_conditions``); None if they do."""
    for key, label in (("host", "another host"), ("tensorflow", "another TensorFlow"),
                       ("method", "another method"), ("threads", "other thread settings")):
        if getattr(cached, key) != now[key]:
            return f"measured on {label} ({getattr(cached, key)!r}, now {now[key]!r})"
    try:
        measured_at = datetime.fromisoformat(cached.measured_at)
    except (TypeError, ValueError):
        return "no measurement date"
    if now["time"] - measured_at > MAX_AGE:
        return f"measured {cached.measured_at}, more than {MAX_AGE.days} day ago"
    return load_reason(cached)


def _conditions() -> dict[str, Any]:
    import tensorflow as tf

    return {"host": socket.gethostname(), "tensorflow": tf.__version__, "method": PEAK_METHOD,
            "threads": current_threads().to_dict(), "time": datetime.now(timezone.utc)}


def measure_peaks(repeats: int = PEAK_REPEATS) -> MachinePeaks:
    """Measure FLOP/s (float32 matmul) and bytes/s (a large sum) with TensorFlow, best of ``repeats``."""
    import tensorflow as tf

    load_start = load_average()
    a = tf.random.normal((MATMUL_SIDE, MATMUL_SIDE))
    b = tf.random.normal((MATMUL_SIDE, MATMUL_SIDE))
    x = tf.fill((STREAM_ELEMENTS,), 1.0)  # one 128 MB buffer (random.normal made ~3x that in temporaries)
    matmul_s = _best_seconds(lambda: tf.linalg.matmul(a, b), repeats)
    stream_s = _best_seconds(lambda: tf.reduce_sum(x), repeats)
    x = None  # the 128 MB buffer freed before the cache measurement
    return MachinePeaks(
        flops_per_s=2 * MATMUL_SIDE ** 3 / matmul_s,
        bytes_per_s=4 * STREAM_ELEMENTS / stream_s,
        cache_bytes_per_s=cache_bytes_per_s(machine_traits().l2_bytes),
        host=socket.gethostname(), tensorflow=tf.__version__, cache_bytes=machine_traits().l3_bytes,
        method=PEAK_METHOD, measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        threads=current_threads().to_dict(), load_start=load_start, load_end=load_average(),
    )


def cache_bytes_per_s(l2_bytes: int | None, repeats: int = CACHE_REPEATS) -> float | None:
    """Bytes per second a sum reads from an array that sits in the L2 cache (half its size; 256 KiB if unknown)."""
    import tensorflow as tf

    elements = (l2_bytes or 512 * 1024) // 2 // 4
    cached, one = tf.random.normal((elements,)), tf.random.normal((1,))
    extra_s = _best_seconds(lambda: tf.reduce_sum(cached), repeats) - _best_seconds(lambda: tf.reduce_sum(one), repeats)
    return 4 * elements / extra_s if extra_s > 0 else None


def _best_seconds(step: Callable[[], Any], repeats: int) -> float:
    step().numpy()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        step().numpy()
        best = min(best, time.perf_counter() - start)
    return best


def _read_cache(path: Path) -> MachinePeaks | None:
    try:
        return MachinePeaks(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_cache(path: Path, peaks: MachinePeaks) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(peaks.to_dict(), indent=2) + "\n")
        os.replace(temporary, path)
    except OSError:
        pass  # an unwritable cache only costs a re-measurement next time
